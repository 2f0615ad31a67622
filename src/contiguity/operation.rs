//! The operations of the Contiguity API this crate knows, as bounded labels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One Contiguity API operation. Its [`as_str`](Operation::as_str) is snake_case and bounded, so
/// it is safe as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `GET /numbers/leases`.
    Available,
    /// `GET /numbers/{n}`.
    Get,
    /// `POST /numbers/lease/{n}`.
    Create,
    /// `GET /numbers/leased`.
    Leased,
    /// `GET /numbers/leased/{n}` (the legacy details path).
    Details,
    /// `POST /numbers/{n}/configure`.
    Configure,
    /// `DELETE /numbers/leased/{n}`.
    Terminate,
    /// `POST /send/text`.
    SendText,
    /// `POST /send/imessage`.
    SendImessage,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 9] = [
        Operation::Available,
        Operation::Get,
        Operation::Create,
        Operation::Leased,
        Operation::Details,
        Operation::Configure,
        Operation::Terminate,
        Operation::SendText,
        Operation::SendImessage,
    ];

    /// snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Available => "available",
            Operation::Get => "get",
            Operation::Create => "create",
            Operation::Leased => "leased",
            Operation::Details => "details",
            Operation::Configure => "configure",
            Operation::Terminate => "terminate",
            Operation::SendText => "send_text",
            Operation::SendImessage => "send_imessage",
        }
    }

    /// Whether the operation only reads (safe to retry).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Operation::Available | Operation::Get | Operation::Leased | Operation::Details
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The label was not one of [`Operation::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), op);
            assert_eq!(serde_json::to_string(&op).unwrap(), format!("\"{}\"", op.as_str()));
        }
        assert!("nope".parse::<Operation>().is_err());
    }
}
