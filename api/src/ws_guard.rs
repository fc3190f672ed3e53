//! The graphql-transport-ws rules async-graphql does not enforce with the protocol's close
//! codes, checked on every client message before async-graphql sees it:
//!
//! | Violation | Close |
//! |---|---|
//! | a message that is not JSON, or has no known `type` | 4400 Invalid message |
//! | `subscribe` before the server acknowledged `connection_init` | 4401 Unauthorized |
//! | no `connection_init` within `http.ws_init_timeout_secs` | 4408 Connection initialisation timeout |
//! | `subscribe` with the id of a subscription still running | 4409 Subscriber for <id> already exists |
//! | a second `connection_init` | 4429 Too many initialisation requests |
//!
//! (4403 Forbidden, for a token that does not verify, is sent by the socket's forwarding loop.)
//! The legacy `graphql-ws` protocol has none of these codes and is not checked.

use std::collections::HashSet;

use serde_json::Value;

/// What to do with one client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the protocol.
    Pass,
    /// Close the socket with this code and reason; the message is dropped.
    Close(u16, String),
}

/// The state of one connection.
#[derive(Debug, Default)]
pub struct WsGuard {
    init_received: bool,
    acked: bool,
    active: HashSet<String>,
}

impl WsGuard {
    /// Whether `connection_init` arrived (the init timeout stops then).
    pub fn init_received(&self) -> bool {
        self.init_received
    }

    /// Checks one text message from the client.
    pub fn inbound(&mut self, text: &str) -> Verdict {
        let invalid = |why: &str| Verdict::Close(4400, format!("Invalid message received: {why}"));
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            return invalid("not a JSON object");
        };
        let id = msg.get("id").and_then(Value::as_str);
        match msg.get("type").and_then(Value::as_str) {
            Some("connection_init") => {
                if self.init_received {
                    return Verdict::Close(4429, "Too many initialisation requests".into());
                }
                self.init_received = true;
                Verdict::Pass
            }
            Some("subscribe") => {
                let Some(id) = id.filter(|i| !i.is_empty()) else {
                    return invalid("subscribe without an id");
                };
                if !msg.get("payload").is_some_and(Value::is_object) {
                    return invalid("subscribe without a payload");
                }
                if !self.acked {
                    return Verdict::Close(4401, "Unauthorized".into());
                }
                if !self.active.insert(id.to_owned()) {
                    return Verdict::Close(4409, format!("Subscriber for {id} already exists"));
                }
                Verdict::Pass
            }
            Some("complete") => {
                match id {
                    Some(id) => {
                        self.active.remove(id);
                    }
                    None => return invalid("complete without an id"),
                }
                Verdict::Pass
            }
            Some("ping" | "pong") => Verdict::Pass,
            Some(other) => invalid(&format!("unknown type {other:?}")),
            None => invalid("no type"),
        }
    }

    /// Notes one text message of the server (acknowledgement, ended subscriptions).
    pub fn outbound(&mut self, text: &str) {
        if !(text.contains("connection_ack") || text.contains("complete") || text.contains("error")) {
            return;
        }
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        match msg.get("type").and_then(Value::as_str) {
            Some("connection_ack") => self.acked = true,
            Some("complete" | "error") => {
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.active.remove(id);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(v: Verdict) -> u16 {
        match v {
            Verdict::Close(c, _) => c,
            Verdict::Pass => 0,
        }
    }

    #[test]
    fn each_violation_has_its_close_code() {
        let mut g = WsGuard::default();
        let sub = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { taskStatus { cursor } }"}}"#;
        assert_eq!(code(g.inbound("not json")), 4400);
        assert_eq!(code(g.inbound(r#"{"type":"nope"}"#)), 4400);
        assert_eq!(code(g.inbound(sub)), 4401, "before the ack");
        assert_eq!(g.inbound(r#"{"type":"connection_init"}"#), Verdict::Pass);
        assert_eq!(code(g.inbound(r#"{"type":"connection_init"}"#)), 4429);
        g.outbound(r#"{"type":"connection_ack"}"#);
        assert_eq!(g.inbound(sub), Verdict::Pass);
        assert_eq!(code(g.inbound(sub)), 4409);
        g.outbound(r#"{"type":"complete","id":"1"}"#);
        assert_eq!(
            g.inbound(sub),
            Verdict::Pass,
            "an id may be reused once its subscription ended"
        );
        assert_eq!(g.inbound(r#"{"type":"complete","id":"1"}"#), Verdict::Pass);
        assert_eq!(g.inbound(sub), Verdict::Pass);
    }
}
