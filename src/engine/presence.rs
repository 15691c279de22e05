//! Presence lists: `presence_state` and `presence_diff` folded as Phoenix.Presence sends them
//! and as phoenix.js's `Presence` folds them (`syncState`, `syncDiff`).
//!
//! - A presence list maps keys to their metas, in the order keys first appeared; the metas
//!   under a key keep their order, metas that join a key already present go after the ones it
//!   had, and metas are told apart by their `phx_ref`.
//! - A `presence_state` replaces the list: what it lacks leaves, what is new joins.
//! - A `presence_diff` applies its `joins`, then its `leaves`.
//! - Diffs that arrive before the `presence_state` of the channel's current join (the server
//!   usually sends the joiner's own diff first) are held back and applied right after it; a
//!   new join cycle (a rejoin) holds diffs back again until its own `presence_state`, and
//!   drops those held for an older cycle.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};

/// The event carrying the full list.
pub const PRESENCE_STATE: &str = "presence_state";
/// The event carrying joins and leaves.
pub const PRESENCE_DIFF: &str = "presence_diff";

/// A JSON object's members in the order they stood in the text.
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `{"joins": {...}, "leaves": {...}}` (either may be missing), presence keys in text order.
struct Diff {
    joins: Option<Ordered>,
    leaves: Option<Ordered>,
}

impl<'de> Deserialize<'de> for Diff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Diff;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a presence diff")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Diff, A::Error> {
                let mut diff = Diff {
                    joins: None,
                    leaves: None,
                };
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "joins" => diff.joins = Some(map.next_value()?),
                        "leaves" => diff.leaves = Some(map.next_value()?),
                        _ => drop(map.next_value::<IgnoredAny>()?),
                    }
                }
                Ok(diff)
            }
        }
        d.deserialize_map(V)
    }
}

/// `{key: {"metas": [...]}, ...}` as (key, metas) pairs; presences without a `metas` array
/// count as having none.
fn presences(obj: Ordered) -> Vec<(String, Vec<Value>)> {
    obj.0
        .into_iter()
        .map(|(k, v)| {
            let metas = match v {
                Value::Object(mut o) => match o.remove("metas") {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            (k, metas)
        })
        .collect()
}

fn phx_ref(meta: &Value) -> Option<&Value> {
    meta.get("phx_ref")
}

fn has_ref(metas: &[Value], r: Option<&Value>) -> bool {
    metas.iter().any(|m| phx_ref(m) == r)
}

fn metas_json(metas: &[Value]) -> Arc<str> {
    Value::Array(metas.to_vec()).to_string().into()
}

/// One change a frame made to the list, with the metas as JSON arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// Metas joined `key`. `current` is what the key had before (`None`: it was absent);
    /// `joined` the metas that joined.
    Join {
        key: String,
        current: Option<String>,
        joined: String,
    },
    /// Metas left `key`. `current` is what the key has after (`[]`: it is gone); `left` the
    /// metas that left.
    Leave {
        key: String,
        current: String,
        left: String,
    },
}

struct Entry {
    key: Arc<str>,
    metas: Vec<Value>,
    json: Arc<str>,
}

/// A channel's presence list and what it holds back.
#[derive(Default)]
pub(crate) struct PresenceTracker {
    entries: Vec<Entry>,
    /// The join_ref of the join cycle whose `presence_state` was applied.
    synced: Option<u64>,
    /// Diffs held back, with the join cycle they arrived in.
    pending: Vec<(Option<u64>, String)>,
}

impl PresenceTracker {
    fn find(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| &*e.key == key)
    }

    /// A `presence_state` for the join cycle `join_ref`: the changes it and the diffs held
    /// back for that cycle made (`None` if the payload is not a presence object).
    pub(crate) fn state(
        &mut self,
        join_ref: Option<u64>,
        json: &str,
    ) -> Option<Vec<PresenceChange>> {
        let new = presences(serde_json::from_str::<Ordered>(json).ok()?);
        let mut changes = Vec::new();
        self.sync_state(new, &mut changes);
        self.synced = join_ref;
        for (cycle, diff) in std::mem::take(&mut self.pending) {
            if cycle == join_ref {
                if let Ok(d) = serde_json::from_str::<Diff>(&diff) {
                    self.sync_diff(d, &mut changes);
                }
            }
        }
        Some(changes)
    }

    /// A `presence_diff` arriving in join cycle `join_ref`: its changes, or `None` when it is
    /// held back (or not a diff).
    pub(crate) fn diff(
        &mut self,
        join_ref: Option<u64>,
        json: &str,
    ) -> Option<Vec<PresenceChange>> {
        if self.synced.is_none() || self.synced != join_ref {
            self.pending.retain(|(cycle, _)| *cycle == join_ref);
            if serde_json::from_str::<Diff>(json).is_ok() {
                self.pending.push((join_ref, json.to_owned()));
            }
            return None;
        }
        let d = serde_json::from_str::<Diff>(json).ok()?;
        let mut changes = Vec::new();
        self.sync_diff(d, &mut changes);
        Some(changes)
    }

    /// Diffs held back (for tests and diagnostics).
    pub(crate) fn held_back(&self) -> usize {
        self.pending.len()
    }

    fn sync_state(&mut self, new: Vec<(String, Vec<Value>)>, out: &mut Vec<PresenceChange>) {
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for e in &self.entries {
            if !new.iter().any(|(k, _)| *k == *e.key) {
                leaves.push((e.key.to_string(), e.metas.clone()));
            }
        }
        for (key, metas) in new {
            match self.find(&key).map(|i| &self.entries[i]) {
                Some(cur) => {
                    let joined: Vec<Value> = metas
                        .iter()
                        .filter(|m| !has_ref(&cur.metas, phx_ref(m)))
                        .cloned()
                        .collect();
                    let left: Vec<Value> = cur
                        .metas
                        .iter()
                        .filter(|m| !has_ref(&metas, phx_ref(m)))
                        .cloned()
                        .collect();
                    if !joined.is_empty() {
                        joins.push((key.clone(), joined));
                    }
                    if !left.is_empty() {
                        leaves.push((key, left));
                    }
                }
                None => joins.push((key, metas)),
            }
        }
        self.apply(joins, leaves, out);
    }

    fn sync_diff(&mut self, diff: Diff, out: &mut Vec<PresenceChange>) {
        let joins = diff.joins.map(presences).unwrap_or_default();
        let leaves = diff.leaves.map(presences).unwrap_or_default();
        self.apply(joins, leaves, out);
    }

    fn apply(
        &mut self,
        joins: Vec<(String, Vec<Value>)>,
        leaves: Vec<(String, Vec<Value>)>,
        out: &mut Vec<PresenceChange>,
    ) {
        for (key, joined) in joins {
            let joined_json = metas_json(&joined);
            match self.find(&key) {
                Some(i) => {
                    let e = &mut self.entries[i];
                    let current = e.json.to_string();
                    let mut metas: Vec<Value> = e
                        .metas
                        .drain(..)
                        .filter(|m| !has_ref(&joined, phx_ref(m)))
                        .collect();
                    metas.extend(joined);
                    e.json = metas_json(&metas);
                    e.metas = metas;
                    out.push(PresenceChange::Join {
                        key,
                        current: Some(current),
                        joined: joined_json.to_string(),
                    });
                }
                None => {
                    self.entries.push(Entry {
                        key: key.as_str().into(),
                        json: joined_json.clone(),
                        metas: joined,
                    });
                    out.push(PresenceChange::Join {
                        key,
                        current: None,
                        joined: joined_json.to_string(),
                    });
                }
            }
        }
        for (key, left) in leaves {
            let Some(i) = self.find(&key) else {
                continue;
            };
            let e = &mut self.entries[i];
            e.metas.retain(|m| !has_ref(&left, phx_ref(m)));
            e.json = metas_json(&e.metas);
            out.push(PresenceChange::Leave {
                key,
                current: e.json.to_string(),
                left: metas_json(&left).to_string(),
            });
            if e.metas.is_empty() {
                self.entries.remove(i);
            }
        }
    }

    /// The list as it is now.
    pub(crate) fn snapshot(&self) -> Arc<PresenceList> {
        Arc::new(PresenceList {
            entries: self
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.json.clone()))
                .collect(),
            json: OnceLock::new(),
        })
    }
}

/// A snapshot of a channel's presence list: keys in the order they first appeared, each with
/// its metas as a JSON array. Immutable; a later frame makes a new snapshot.
#[derive(Debug, Default)]
pub struct PresenceList {
    entries: Vec<(Arc<str>, Arc<str>)>,
    json: OnceLock<String>,
}

impl PresenceList {
    /// How many keys are present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys and their metas (JSON arrays), in list order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, m)| (&**k, &**m))
    }

    /// Entry `index`: key and metas (a JSON array).
    pub fn get(&self, index: usize) -> Option<(&str, &str)> {
        self.entries.get(index).map(|(k, m)| (&**k, &**m))
    }

    /// The metas of `key` (a JSON array), if present.
    pub fn metas(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, m)| m)
    }

    /// The list as `{"<key>": {"metas": [...]}, ...}`, keys in list order (as the server
    /// sends `presence_state`).
    pub fn to_json(&self) -> &str {
        self.json.get_or_init(|| {
            let mut s = String::from("{");
            for (i, (k, m)) in self.entries.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{}:{{\"metas\":{m}}}", Value::String(k.to_string()));
            }
            s.push('}');
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(key: &str, current: Option<&str>, joined: &str) -> PresenceChange {
        PresenceChange::Join {
            key: key.into(),
            current: current.map(Into::into),
            joined: joined.into(),
        }
    }

    #[test]
    fn a_diff_before_the_state_is_held_back_and_deduplicated() {
        let mut t = PresenceTracker::default();
        let d = r#"{"joins":{"a":{"metas":[{"phx_ref":"1"}]}},"leaves":{}}"#;
        assert_eq!(t.diff(Some(1), d), None);
        assert_eq!(t.held_back(), 1);
        let ch = t
            .state(Some(1), r#"{"a":{"metas":[{"phx_ref":"1"}]}}"#)
            .unwrap();
        assert_eq!(
            ch,
            vec![
                join("a", None, r#"[{"phx_ref":"1"}]"#),
                join("a", Some(r#"[{"phx_ref":"1"}]"#), r#"[{"phx_ref":"1"}]"#),
            ]
        );
        assert_eq!(
            t.snapshot().to_json(),
            r#"{"a":{"metas":[{"phx_ref":"1"}]}}"#
        );
        assert_eq!(t.held_back(), 0);
    }

    #[test]
    fn diffs_of_an_older_cycle_are_dropped() {
        let mut t = PresenceTracker::default();
        let d = r#"{"joins":{"a":{"metas":[{"phx_ref":"1"}]}},"leaves":{}}"#;
        assert_eq!(t.diff(Some(1), d), None);
        let b = r#"{"joins":{"b":{"metas":[{"phx_ref":"1"}]}},"leaves":{}}"#;
        assert_eq!(t.diff(Some(5), b), None);
        assert_eq!(t.held_back(), 1);
        t.state(Some(5), "{}").unwrap();
        assert_eq!(
            t.snapshot().to_json(),
            r#"{"b":{"metas":[{"phx_ref":"1"}]}}"#
        );
    }

    fn devices(t: &PresenceTracker) -> Vec<(String, Vec<String>)> {
        t.snapshot()
            .iter()
            .map(|(k, m)| {
                let metas: Vec<Value> = serde_json::from_str(m).unwrap();
                let d = metas
                    .iter()
                    .map(|m| m["device"].as_str().unwrap().to_owned());
                (k.to_owned(), d.collect())
            })
            .collect()
    }

    fn meta(device: &str, r: &str) -> String {
        format!(r#"{{"device":"{device}","online_at":1,"phx_ref":"{r}"}}"#)
    }

    fn joins(key: &str, m: &str) -> String {
        format!(r#"{{"joins":{{"{key}":{{"metas":[{m}]}}}},"leaves":{{}}}}"#)
    }

    // Transcript (h): D1 (diff first), D2 (state after another socket's meta), the update of
    // the first meta, and E building its list from a state in which dave's metas are in the
    // server's order; then the state-first ordering of the Cowboy run.
    #[test]
    fn transcript_h_both_orderings() {
        let first = meta("first", "R1");
        let second = meta("second", "R2");
        let updated =
            r#"{"device":"first-updated","online_at":1,"phx_ref":"R3","phx_ref_prev":"R1"}"#;
        let update = format!(
            r#"{{"joins":{{"dave":{{"metas":[{updated}]}}}},"leaves":{{"dave":{{"metas":[{first}]}}}}}}"#
        );
        let erin = meta("default", "R4");

        let mut d1 = PresenceTracker::default();
        assert_eq!(d1.diff(Some(4), &joins("dave", &first)), None);
        let ch = d1
            .state(Some(4), &format!(r#"{{"dave":{{"metas":[{first}]}}}}"#))
            .unwrap();
        assert_eq!(
            ch.len(),
            2,
            "the state's join, then the held diff's: {ch:?}"
        );
        assert_eq!(devices(&d1), [("dave".into(), vec!["first".into()])]);
        let ch = d1.diff(Some(4), &joins("dave", &second)).unwrap();
        assert_eq!(
            ch,
            [join(
                "dave",
                Some(&format!("[{first}]")),
                &format!("[{second}]")
            )]
        );
        let ch = d1.diff(Some(4), &update).unwrap();
        assert_eq!(
            ch,
            [
                join(
                    "dave",
                    Some(&format!("[{first},{second}]")),
                    &format!("[{updated}]")
                ),
                PresenceChange::Leave {
                    key: "dave".into(),
                    current: format!("[{second},{updated}]"),
                    left: format!("[{first}]"),
                },
            ]
        );
        d1.diff(Some(4), &joins("erin", &erin)).unwrap();
        let d1_list = vec![
            (
                "dave".to_owned(),
                vec!["second".to_owned(), "first-updated".to_owned()],
            ),
            ("erin".to_owned(), vec!["default".to_owned()]),
        ];
        assert_eq!(devices(&d1), d1_list);

        // E: its own diff first, then the state (dave's metas in the server's order).
        let mut e = PresenceTracker::default();
        assert_eq!(e.diff(Some(4), &joins("erin", &erin)), None);
        let state =
            format!(r#"{{"dave":{{"metas":[{updated},{second}]}},"erin":{{"metas":[{erin}]}}}}"#);
        let ch = e.state(Some(4), &state).unwrap();
        assert_eq!(
            ch,
            [
                join("dave", None, &format!("[{updated},{second}]")),
                join("erin", None, &format!("[{erin}]")),
                join("erin", Some(&format!("[{erin}]")), &format!("[{erin}]")),
            ]
        );
        assert_eq!(
            devices(&e),
            [
                ("dave".into(), vec!["first-updated".into(), "second".into()]),
                ("erin".into(), vec!["default".into()]),
            ]
        );

        // Cowboy D1: the state first, then the own diff (deduplicated by phx_ref).
        let mut c = PresenceTracker::default();
        let ch = c
            .state(Some(4), &format!(r#"{{"dave":{{"metas":[{first}]}}}}"#))
            .unwrap();
        assert_eq!(ch, [join("dave", None, &format!("[{first}]"))]);
        let ch = c.diff(Some(4), &joins("dave", &first)).unwrap();
        assert_eq!(
            ch,
            [join(
                "dave",
                Some(&format!("[{first}]")),
                &format!("[{first}]")
            )]
        );
        assert_eq!(devices(&c), [("dave".into(), vec!["first".into()])]);
    }

    // A rejoin: diffs of the new cycle wait for its state; the state replaces the list, what
    // it lacks leaving.
    #[test]
    fn a_rejoin_starts_from_its_state() {
        let a = meta("default", "A");
        let b = meta("laptop", "B");
        let c = meta("phone", "C");
        let mut t = PresenceTracker::default();
        t.state(
            Some(1),
            &format!(r#"{{"alice":{{"metas":[{a}]}},"bob":{{"metas":[{b}]}}}}"#),
        )
        .unwrap();
        assert_eq!(t.diff(Some(9), &joins("carol", &c)), None);
        let ch = t
            .state(
                Some(9),
                &format!(r#"{{"alice":{{"metas":[{a}]}},"carol":{{"metas":[{c}]}}}}"#),
            )
            .unwrap();
        assert_eq!(
            ch,
            [
                join("carol", None, &format!("[{c}]")),
                PresenceChange::Leave {
                    key: "bob".into(),
                    current: "[]".into(),
                    left: format!("[{b}]"),
                },
                join("carol", Some(&format!("[{c}]")), &format!("[{c}]")),
            ]
        );
        assert_eq!(
            t.snapshot().iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["alice", "carol"]
        );
    }
}
