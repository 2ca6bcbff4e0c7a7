//! Reading requests and writing replies, one JSON value per line.
//!
//! A line is parsed to a `serde_json::Value` first and the request read from that, so the
//! `id` can be echoed even when the rest of the request is wrong. Nothing here panics on any
//! input: serde_json bounds nesting depth, and every failure becomes a `bad_request` error.
//!
//! A `Value` keeps the last of two equal keys, so `{"cmd":"status","cmd":"stop"}` would
//! read as a `stop` that the client may not have meant (or that a proxy which checked the
//! first `cmd` did not see): a request with a duplicate key, at any depth, is refused.

use serde::Deserialize;
use serde_json::Value;

use super::protocol::{ErrorKind, Incoming, ProtocolError, Reply, Request};

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Incoming {
    let bad = |id, message: String| Incoming {
        id,
        request: Err(ProtocolError::new(ErrorKind::BadRequest, message)),
    };
    let mut value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => return bad(None, format!("not a JSON request: {e}")),
    };
    let Some(object) = value.as_object_mut() else {
        return bad(None, "a request is a JSON object".to_owned());
    };
    if let Err(e) = serde_json::from_slice::<NoDuplicateKeys>(line) {
        // The id is echoed unless it is itself the key given twice: then it is not known.
        let id = match object.get("id") {
            Some(Value::Number(n)) if !e.to_string().contains("`id`") => n.as_u64(),
            _ => None,
        };
        return bad(id, format!("bad request: {e}"));
    }
    let id = match object.remove("id") {
        None => return bad(None, "the request has no `id`".to_owned()),
        Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
        Some(other) => {
            return bad(
                None,
                format!("`id` must be a non-negative integer, not {other}"),
            );
        }
    };
    let request = match Request::deserialize(&value) {
        Ok(request) => request,
        Err(e) => return bad(id, format!("bad request: {e}")),
    };
    if let Some(field) = unknown_field(&value, &request) {
        return bad(id, format!("bad request: unknown field `{field}`"));
    }
    Incoming {
        id,
        request: Ok(request),
    }
}

/// A field of `value` that `request` does not have. serde's `deny_unknown_fields` catches
/// these for commands with fields but not for those without (`shutdown`): an internally
/// tagged unit variant ignores whatever else the object holds. Comparing with the request
/// serialized back covers every command the same way.
fn unknown_field(value: &Value, request: &Request) -> Option<String> {
    let known = serde_json::to_value(request).ok()?;
    let (Value::Object(given), Value::Object(known)) = (value, &known) else {
        return None;
    };
    given.keys().find(|key| !known.contains_key(*key)).cloned()
}

/// Deserializes any JSON without keeping it, failing on an object that has a key twice.
/// serde_json's `Value` (and every derived struct) silently keeps the last one.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key `{key}` appears twice"
                )));
            }
            map.next_value::<NoDuplicateKeys>()?;
            keys.insert(key);
        }
        Ok(NoDuplicateKeys)
    }
}

/// The reply as one line, newline included.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut line = serde_json::to_vec(reply).unwrap_or_else(|e| {
        // Serializing a `Value` cannot fail in practice (no maps with non-string keys);
        // should it ever, the client still gets a well-formed error with its id.
        let fallback = Reply::err(
            reply.id,
            ProtocolError::new(ErrorKind::Failed, format!("cannot encode the reply: {e}")),
        );
        serde_json::to_vec(&fallback).unwrap_or_else(|_| br#"{"id":null,"ok":false}"#.to_vec())
    });
    line.push(b'\n');
    line
}

/// A request as one line, newline included (the client's side of [`parse_request`]).
pub fn encode_request<R: serde::Serialize + ?Sized>(
    id: u64,
    request: &R,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut value = serde_json::to_value(request)?;
    if let Value::Object(object) = &mut value {
        object.insert("id".to_owned(), Value::from(id));
    }
    let mut line = serde_json::to_vec(&value)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn kind(incoming: &Incoming) -> Option<ErrorKind> {
        incoming.request.as_ref().err().map(|e| e.kind)
    }

    #[test]
    fn valid_requests() {
        let hello = parse_request(br#"{"id":1,"cmd":"hello","version":1}"#);
        assert_eq!(hello.id, Some(1));
        assert_eq!(hello.request, Ok(Request::Hello { version: 1 }));
        let stop = parse_request(br#"{"cmd":"stop","services":["a","b"],"id":7}"#);
        assert_eq!(stop.id, Some(7));
        assert_eq!(
            stop.request,
            Ok(Request::Stop {
                services: vec!["a".into(), "b".into()],
                all: false
            })
        );
        let shutdown = parse_request(br#"{"id":2,"cmd":"shutdown"}"#);
        assert_eq!(shutdown.request, Ok(Request::Shutdown));
        let status = parse_request(b" {\"id\":3,\"cmd\":\"status\"}\r");
        assert_eq!(status.request, Ok(Request::Status { services: vec![] }));
    }

    #[test]
    fn the_id_is_echoed_when_the_rest_is_wrong() {
        for line in [
            &br#"{"id":5,"cmd":"frobnicate"}"#[..],
            br#"{"id":5}"#,
            br#"{"id":5,"cmd":"stop","services":"web"}"#,
            br#"{"id":5,"cmd":"stop","sevrices":["web"]}"#,
            br#"{"id":5,"cmd":"shutdown","now":true}"#,
            br#"{"id":5,"cmd":"hello"}"#,
        ] {
            let incoming = parse_request(line);
            assert_eq!(incoming.id, Some(5), "{}", String::from_utf8_lossy(line));
            assert_eq!(
                kind(&incoming),
                Some(ErrorKind::BadRequest),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn messages_name_what_is_wrong() {
        let message = |line: &[u8]| parse_request(line).request.unwrap_err().message;
        assert!(message(br#"{"id":1,"cmd":"frobnicate"}"#).contains("frobnicate"));
        assert!(message(br#"{"id":1,"cmd":"stop","sevrices":[]}"#).contains("sevrices"));
        assert!(message(br#"{"id":1,"cmd":"hello"}"#).contains("version"));
        assert!(message(br#"{"cmd":"hello"}"#).contains("id"));
        assert!(message(br#"{"id":-1,"cmd":"hello"}"#).contains("id"));
        assert!(message(b"[1]").contains("object"));
        assert!(message(b"\xff\xfe").contains("JSON"));
    }

    #[test]
    fn a_duplicate_key_is_refused_at_any_depth() {
        for line in [
            &br#"{"id":3,"cmd":"status","cmd":"stop","services":[]}"#[..],
            br#"{"id":3,"cmd":"stop","services":["a"],"services":["b"]}"#,
            br#"{"id":3,"cmd":"status","x":{"a":1,"a":2}}"#,
            br#"{"id":3,"cmd":"status","services":[{"a":1,"b":{"c":1,"c":1}}]}"#,
        ] {
            let incoming = parse_request(line);
            let text = String::from_utf8_lossy(line);
            assert_eq!(incoming.id, Some(3), "{text}");
            let err = incoming.request.unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest, "{text}");
            assert!(err.message.contains("appears twice"), "{text}: {err}");
        }
        let incoming = parse_request(br#"{"id":3,"cmd":"status","cmd":"stop"}"#);
        assert!(incoming.request.unwrap_err().message.contains("`cmd`"));
        // With the id given twice, which one to echo is not known.
        let incoming = parse_request(br#"{"id":3,"id":4,"cmd":"status"}"#);
        assert_eq!(incoming.id, None);
        assert_eq!(kind(&incoming), Some(ErrorKind::BadRequest));
        // Equal values under different objects are not duplicates.
        let incoming = parse_request(br#"{"id":3,"cmd":"status","services":["a","a"]}"#);
        assert!(incoming.request.is_ok());
    }

    #[test]
    fn a_bad_id_gives_a_null_id() {
        for line in [
            &br#"{"id":"1","cmd":"status"}"#[..],
            br#"{"id":1.5,"cmd":"status"}"#,
            br#"{"id":-3,"cmd":"status"}"#,
            br#"{"id":null,"cmd":"status"}"#,
            br#"{"cmd":"status"}"#,
            b"",
            b"null",
        ] {
            let incoming = parse_request(line);
            assert_eq!(incoming.id, None);
            assert_eq!(kind(&incoming), Some(ErrorKind::BadRequest));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut line = br#"{"id":1,"cmd":"status","services":"#.to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        let incoming = parse_request(&line);
        assert_eq!(kind(&incoming), Some(ErrorKind::BadRequest));
    }

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Hello { version: 1 },
            Request::Status {
                services: vec!["web".into()],
            },
            Request::Restart {
                services: vec![],
                all: true,
            },
            Request::Reload { dry_run: true },
            Request::Shutdown,
        ];
        for (id, request) in requests.into_iter().enumerate() {
            let line = encode_request(id as u64, &request).unwrap();
            assert_eq!(line.last(), Some(&b'\n'));
            let incoming = parse_request(&line[..line.len() - 1]);
            assert_eq!(incoming.id, Some(id as u64));
            assert_eq!(incoming.request, Ok(request));
        }
    }

    #[test]
    fn replies_are_one_line() {
        let reply = Reply::ok(Some(3), serde_json::json!({"text": "a\nb"}));
        let line = encode_reply(&reply);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Reply = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, reply);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let incoming = parse_request(&line);
            // Whatever came in, an error reply for it can be written.
            if let Err(e) = incoming.request {
                let _ = encode_reply(&Reply::err(incoming.id, e));
            }
        }

        #[test]
        fn json_ish_strings_never_panic(
            line in r#"\{("(id|cmd|version|services|all|dry_run|x)":(-?[0-9]{1,22}(\.[0-9])?|"(hello|status|start|stop|restart|reload|shutdown|x)"|\[("[a-z]{0,3}",?){0,3}\]|true|null|\{\}),?){0,6}\}"#
        ) {
            let incoming = parse_request(line.as_bytes());
            if let Ok(request) = &incoming.request {
                // Anything accepted has an id and survives a round trip.
                let id = incoming.id.expect("an accepted request has an id");
                let encoded = encode_request(id, request).unwrap();
                prop_assert_eq!(parse_request(&encoded[..encoded.len() - 1]), incoming.clone());
            }
        }
    }
}
