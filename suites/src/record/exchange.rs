//! What the `exchange` client records (see [`crate::measure::exchange`]): each
//! request/reply exchange's duration with the kernel's view of the connection before it.

use serde::{Deserialize, Serialize};

/// The exchanges of one connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    /// `TCP_INFO`'s `tcpi_rtt` right after the handshake: the kernel's first RTT sample,
    /// µs.
    pub handshake_rtt_us: Option<u64>,
    /// `tcpi_min_rtt` after the last exchange, µs: the least RTT sample of the connection
    /// (the handshake's and every exchange's, those a delayed ACK may have stretched
    /// left out), the model's round trip (absent in records from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rtt_us: Option<u64>,
    /// Each exchange, in order.
    pub exchanges: Vec<ExchangeSample>,
}

/// One request/reply exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeSample {
    /// From the first write() of the request to the last byte of the reply read, µs.
    pub took_us: u64,
    /// `tcpi_rtt` just before the request, µs: the smoothed RTT, which the delayed ACKs
    /// inflate.
    pub rtt_us: u64,
    /// `tcpi_rto` just before the request, µs: the RTO a corked request waits for.
    pub rto_us: u64,
    /// The slowness probe's worst timer lateness over the exchange, µs.
    pub late_us: u64,
}
