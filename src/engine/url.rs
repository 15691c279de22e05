//! Builds the endpoint URL: validates `ws://`/`wss://`, appends `vsn=2.0.0` and the connect params.

use tokio_tungstenite::tungstenite::http::Uri;

/// A validated endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The full request URL, query included.
    pub url: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Validates `base` and adds `vsn=2.0.0` plus `params` (URL-encoded) to its query.
pub fn endpoint(base: &str, params: &[(String, String)]) -> Result<Endpoint, &'static str> {
    let uri: Uri = base.parse().map_err(|_| "URL does not parse")?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err("URL scheme must be ws or wss"),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("URL has no host")?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let (without_fragment, _) = base.split_once('#').unwrap_or((base, ""));
    let mut url = String::with_capacity(without_fragment.len() + 16);
    url.push_str(without_fragment);
    if uri.path_and_query().is_none_or(|pq| pq.as_str().is_empty()) {
        url.push('/');
    }
    url.push(if uri.query().is_some() { '&' } else { '?' });
    url.push_str("vsn=2.0.0");
    for (k, v) in params {
        url.push('&');
        percent_encode(&mut url, k);
        url.push('=');
        percent_encode(&mut url, v);
    }
    // The final string must itself be a valid request URI.
    url.parse::<Uri>().map_err(|_| "URL does not parse")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(Endpoint {
        url,
        host,
        port,
        tls,
    })
}

impl Endpoint {
    /// The URL for logs: every query value but `vsn`'s replaced by `***` (params carry
    /// tokens).
    pub fn redacted(&self) -> String {
        redact_query(&self.url)
    }
}

/// `url` with every query value but `vsn`'s replaced by `***`: what logs and `Debug` show of a
/// URL, whose params may carry tokens.
pub(crate) fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    for (i, pair) in query.split('&').enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        match pair.split_once('=') {
            Some(("vsn", v)) => {
                out.push_str("vsn=");
                out.push_str(v);
            }
            Some((k, _)) => {
                out.push_str(k);
                out.push_str("=***");
            }
            None => out.push_str(pair),
        }
    }
    out
}

fn percent_encode(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn appends_vsn_and_encoded_params() {
        let e = endpoint(
            "ws://localhost:4000/socket/websocket",
            &[p("token", "a b&c")],
        )
        .unwrap();
        assert_eq!(
            e.url,
            "ws://localhost:4000/socket/websocket?vsn=2.0.0&token=a%20b%26c"
        );
        assert_eq!((e.host.as_str(), e.port, e.tls), ("localhost", 4000, false));
        let e = endpoint("wss://example.com/socket/websocket?x=1", &[]).unwrap();
        assert_eq!(e.url, "wss://example.com/socket/websocket?x=1&vsn=2.0.0");
        assert_eq!((e.port, e.tls), (443, true));
        let e = endpoint("ws://[::1]:9/s", &[]).unwrap();
        assert_eq!(e.host, "::1");
    }

    #[test]
    fn redacted_hides_every_query_value_but_vsn() {
        let e = endpoint("ws://h:4/s?key=abc", &[p("token", "s3cret"), p("x", "y")]).unwrap();
        assert_eq!(e.redacted(), "ws://h:4/s?key=***&vsn=2.0.0&token=***&x=***");
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(endpoint("http://localhost/socket", &[]).is_err());
        assert!(endpoint("not a url", &[]).is_err());
        assert!(endpoint("ws://", &[]).is_err());
        assert!(endpoint("", &[]).is_err());
    }
}
