//! Just enough HTTP/1.1: read a request head, answer with a status and a body.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt};

const MAX_HEAD: usize = 16 * 1024;

pub(crate) struct Request {
    pub method: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: u8,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased, in request order (repeats kept).
    pub headers: Vec<(String, String)>,
    /// Bytes read after the head (the start of the WebSocket stream).
    pub rest: Vec<u8>,
}

impl Request {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The last value of a query parameter (Plug keeps the last of repeated keys).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads and parses a request head. `None` on EOF, I/O error, or a malformed/oversized head.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let target = req.path.unwrap_or("/");
                let (path, query) = match target.split_once('?') {
                    Some((p, q)) => (p, q),
                    None => (target, ""),
                };
                return Some(Request {
                    method: req.method.unwrap_or("GET").to_owned(),
                    version: req.version.unwrap_or(1),
                    path: path.to_owned(),
                    query: parse_query(query),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    rest: buf[len..].to_vec(),
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => return None,
        }
    }
}

/// `a=1&b=x+y&c=%2F` → pairs, decoded as `application/x-www-form-urlencoded`.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// A complete response with `content-length` and the headers Phoenix/Bandit send.
pub(crate) fn response(status: u16, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    response_with(status, content_type, &[], body)
}

/// [`response`] with extra headers (`retry-after`, say).
pub(crate) fn response_with(
    status: u16,
    content_type: Option<&str>,
    extra: &[(&str, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ndate: {}\r\ncontent-length: {}\r\nvary: accept-encoding\r\ncache-control: max-age=0, private, must-revalidate\r\n",
        reason(status),
        http_date(SystemTime::now()),
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str("content-type: ");
        head.push_str(ct);
        head.push_str("\r\n");
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The 101 answer to a WebSocket upgrade (no extension; the subprotocol selected, if any), as
/// Bandit writes it.
pub(crate) fn switching_protocols(accept_key: &str, subprotocol: Option<&str>) -> Vec<u8> {
    let protocol = subprotocol
        .map(|p| format!("sec-websocket-protocol: {p}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\ndate: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept_key}\r\n{protocol}cache-control: max-age=0, private, must-revalidate\r\n\r\n",
        http_date(SystemTime::now())
    )
    .into_bytes()
}

/// `Thu, 26 Nov 2026 02:35:22 GMT`
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(month - 1) as usize],
        year,
        h,
        m,
        s
    )
}

/// Elixir's `inspect/1` of a list of strings: `["keep-alive"]`.
pub(crate) fn inspect_list(values: &[&str]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::from("\"");
            for c in v.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    '\n' => s.push_str("\\n"),
                    '\r' => s.push_str("\\r"),
                    '\t' => s.push_str("\\t"),
                    c if (c as u32) < 0x20 => s.push_str(&format!("\\x{:02X}", c as u32)),
                    c => s.push(c),
                }
            }
            s.push('"');
            s
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_http_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_660_522);
        assert_eq!(http_date(t), "Thu, 26 Nov 2026 02:35:22 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn decodes_queries() {
        assert_eq!(
            parse_query("vsn=2.0.0&token=a+b%2Fc&x&bad=%zz%4"),
            vec![
                ("vsn".into(), "2.0.0".into()),
                ("token".into(), "a b/c".into()),
                ("x".into(), "".into()),
                ("bad".into(), "%zz%4".into())
            ]
        );
    }

    #[test]
    fn inspects_like_elixir() {
        assert_eq!(inspect_list(&["keep-alive"]), r#"["keep-alive"]"#);
        assert_eq!(inspect_list(&[]), "[]");
        assert_eq!(inspect_list(&["a", "b\"c"]), r#"["a", "b\"c"]"#);
    }
}
