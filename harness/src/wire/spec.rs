//! What a wire does: the fault program of each direction, the packet rules, the seed.
//! Plain data, validated before anything is built ([`WireSpec::validate`]).

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// The default bound on the packets a direction holds, as netem's `limit`.
pub const DEFAULT_LIMIT: usize = 1000;

/// How jitter is spread around the fixed delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Uniform in `delay ± spread`.
    Uniform,
    /// Normal with standard deviation `spread`, cut at `± 4 spread` (and at zero).
    Normal,
}

/// Random variation of the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Jitter {
    /// Half-width (uniform) or standard deviation (normal).
    pub spread: Duration,
    /// The shape.
    pub distribution: Distribution,
    /// Whether a packet may overtake its predecessor when its jitter is smaller. Off by
    /// default: a packet never leaves before the one that arrived before it (netem's
    /// pitfall is that jitter alone reorders).
    pub reorders: bool,
}

/// Which packets are lost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Each packet independently with this probability (0..=1).
    Random(f64),
    /// Every `n`th packet (the `n`th, `2n`th, …), exactly.
    EveryNth(u64),
    /// The Gilbert-Elliott burst model (netem's `loss gemodel p r 1-h 1-k`): a good and a
    /// bad state; `p` the chance to go bad, `r` to recover, and the loss probability in
    /// each state.
    GilbertElliott {
        /// Good → bad, per packet.
        p: f64,
        /// Bad → good, per packet.
        r: f64,
        /// Loss probability in the bad state (netem's `1-h`).
        loss_bad: f64,
        /// Loss probability in the good state (netem's `1-k`).
        loss_good: f64,
    },
}

/// Reordering as netem does it: with `probability`, a packet skips the delay and leaves
/// at once, ahead of the packets still held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reorder {
    /// The chance, 0..=1.
    pub probability: f64,
}

/// The fault program of one direction. `Faults::default()` is a perfect wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Faults {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Variation of the delay.
    pub jitter: Option<Jitter>,
    /// Which packets are lost.
    pub loss: Option<Loss>,
    /// Chance (0..=1) that a packet is delivered twice.
    pub duplicate: f64,
    /// Packets that overtake the held ones.
    pub reorder: Option<Reorder>,
    /// Chance (0..=1) that one random bit of a packet is flipped (the receiver's checksum
    /// then drops it, as netem's `corrupt`).
    pub corrupt: f64,
    /// Serialisation rate in bits per second (`None`: as fast as the relay goes).
    pub rate_bps: Option<u64>,
    /// The most packets held at once (delayed or queued for the rate); more are dropped
    /// at the tail, as netem's `limit`.
    pub limit: usize,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: None,
            loss: None,
            duplicate: 0.0,
            reorder: None,
            corrupt: 0.0,
            rate_bps: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Faults {
    /// A perfect direction; add faults with the methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fixed one-way delay.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Uniform jitter of `± spread` that keeps the packets in order.
    #[must_use]
    pub fn jitter(mut self, spread: Duration) -> Self {
        self.jitter = Some(Jitter {
            spread,
            distribution: Distribution::Uniform,
            reorders: false,
        });
        self
    }

    /// Jitter with any distribution, reordering or not.
    #[must_use]
    pub fn jitter_with(mut self, jitter: Jitter) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// Random loss with `probability` (0..=1).
    #[must_use]
    pub fn loss(mut self, probability: f64) -> Self {
        self.loss = Some(Loss::Random(probability));
        self
    }

    /// Any loss model.
    #[must_use]
    pub fn loss_model(mut self, loss: Loss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// Duplicates with `probability`.
    #[must_use]
    pub fn duplicate(mut self, probability: f64) -> Self {
        self.duplicate = probability;
        self
    }

    /// Reorders with `probability` (needs a delay to overtake).
    #[must_use]
    pub fn reorder(mut self, probability: f64) -> Self {
        self.reorder = Some(Reorder { probability });
        self
    }

    /// Corrupts with `probability`.
    #[must_use]
    pub fn corrupt(mut self, probability: f64) -> Self {
        self.corrupt = probability;
        self
    }

    /// A rate in bits per second.
    #[must_use]
    pub fn rate_bps(mut self, bps: u64) -> Self {
        self.rate_bps = Some(bps);
        self
    }

    /// The bound on held packets.
    #[must_use]
    pub fn limit(mut self, packets: usize) -> Self {
        self.limit = packets;
        self
    }

    /// Whether this direction does nothing to its packets.
    pub fn is_perfect(&self) -> bool {
        Self {
            limit: self.limit,
            ..Self::default()
        } == *self
    }

    fn validate(&self, direction: &str) -> Result<()> {
        let invalid = |what: String| {
            Err(Error::Invalid {
                reason: format!("wire {direction}: {what}"),
            })
        };
        let probability = |name: &str, p: f64| -> Result<()> {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                invalid(format!(
                    "{name} {p} is not a probability (0 to 1, i.e. 0 % to 100 %)"
                ))
            }
        };
        probability("duplicate", self.duplicate)?;
        probability("corrupt", self.corrupt)?;
        if let Some(r) = self.reorder {
            probability("reorder", r.probability)?;
        }
        match self.loss {
            Some(Loss::Random(p)) => probability("loss", p)?,
            Some(Loss::EveryNth(0)) => return invalid("loss every 0th packet".into()),
            Some(Loss::GilbertElliott {
                p,
                r,
                loss_bad,
                loss_good,
            }) => {
                probability("Gilbert-Elliott p", p)?;
                probability("Gilbert-Elliott r", r)?;
                probability("Gilbert-Elliott loss in the bad state", loss_bad)?;
                probability("Gilbert-Elliott loss in the good state", loss_good)?;
            }
            _ => {}
        }
        if self.limit == 0 {
            return invalid("limit 0 would drop every packet".into());
        }
        if self.rate_bps == Some(0) {
            return invalid("rate 0 would hold every packet forever".into());
        }
        let hour = Duration::from_secs(3600);
        if self.delay > hour || self.jitter.is_some_and(|j| j.spread > hour) {
            return invalid("delay or jitter over an hour".into());
        }
        Ok(())
    }
}

/// Which way a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client's side (`a` of [`super::Wire::between`]) to the peer.
    ToPeer,
    /// From the peer back to the client.
    FromPeer,
}

impl Direction {
    /// The other way.
    pub fn reverse(self) -> Self {
        match self {
            Self::ToPeer => Self::FromPeer,
            Self::FromPeer => Self::ToPeer,
        }
    }

    /// `to_peer` / `from_peer`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ToPeer => "to_peer",
            Self::FromPeer => "from_peer",
        }
    }
}

/// What a rule does to the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The packet is lost.
    Drop,
    /// The packet is held this much longer than the direction's delay.
    Delay(Duration),
    /// The advertised window is rewritten (0: a zero window), checksum fixed.
    Window(u16),
    /// The MSS option (of a SYN or SYN-ACK) is rewritten, checksum fixed.
    Mss(u16),
    /// The packet is dropped and each end gets a RST as if from the other: the sender's
    /// next call fails with ECONNRESET. The RST to the receiver arrives after this
    /// direction's fixed delay, the one to the sender after both directions' (a round
    /// trip), as if the far end had answered (no other fault applies to them).
    Reset,
    /// The packet is dropped and its sender gets an ICMP destination unreachable with this
    /// code (1 host, 3 port, 13 administratively prohibited) from its destination, after
    /// both directions' fixed delays (a round trip, as from a real host).
    IcmpUnreachable(u8),
}

/// A packet rule, packetdrill's scripted peer in small: a TCP segment in `direction`
/// whose flags match, optionally only the `nth` such, optionally only past byte
/// `after_bytes` of its stream, gets `action`. Build with [`Rule::to_peer`] or
/// [`Rule::from_peer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Which way.
    pub directions: Vec<Direction>,
    /// Flags that must be set.
    pub flags_set: u8,
    /// Flags that must be clear.
    pub flags_clear: u8,
    /// Only the `n`th segment that matches everything else (1 is the first).
    pub nth: Option<u64>,
    /// Only segments carrying stream bytes past this offset (0 is the first payload
    /// byte after the SYN); retransmissions match again.
    pub after_bytes: Option<u64>,
    /// What to do.
    pub action: Action,
}

impl Rule {
    fn new(directions: Vec<Direction>) -> Self {
        Self {
            directions,
            flags_set: 0,
            flags_clear: 0,
            nth: None,
            after_bytes: None,
            action: Action::Drop,
        }
    }

    /// A rule for segments toward the peer.
    pub fn to_peer() -> Self {
        Self::new(vec![Direction::ToPeer])
    }

    /// A rule for segments from the peer.
    pub fn from_peer() -> Self {
        Self::new(vec![Direction::FromPeer])
    }

    /// A rule for segments either way.
    pub fn both() -> Self {
        Self::new(vec![Direction::ToPeer, Direction::FromPeer])
    }

    /// Only segments with every flag of `set` set and every flag of `clear` clear
    /// ([`crate::capture::TcpFlags`] bits).
    #[must_use]
    pub fn flags(mut self, set: u8, clear: u8) -> Self {
        self.flags_set |= set;
        self.flags_clear |= clear;
        self
    }

    /// Only SYN-ACKs.
    #[must_use]
    pub fn syn_ack(self) -> Self {
        use crate::capture::TcpFlags;
        self.flags(TcpFlags::SYN | TcpFlags::ACK, 0)
    }

    /// Only connection requests (SYN without ACK).
    #[must_use]
    pub fn syn(self) -> Self {
        use crate::capture::TcpFlags;
        self.flags(TcpFlags::SYN, TcpFlags::ACK)
    }

    /// Only the `n`th match (1 is the first).
    #[must_use]
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }

    /// Only segments carrying stream bytes past `offset`.
    #[must_use]
    pub fn after_bytes(mut self, offset: u64) -> Self {
        self.after_bytes = Some(offset);
        self
    }

    /// The action.
    #[must_use]
    pub fn then(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    fn validate(&self, index: usize) -> Result<()> {
        let invalid = |what: &str| {
            Err(Error::Invalid {
                reason: format!("wire rule {}: {what}", index + 1),
            })
        };
        if self.directions.is_empty() {
            return invalid("no direction");
        }
        if self.flags_set & self.flags_clear != 0 {
            return invalid("a flag must be both set and clear: it matches nothing");
        }
        if self.nth == Some(0) {
            return invalid("nth counts from 1");
        }
        if self.action == Action::Mss(0) {
            return invalid("MSS 0");
        }
        if let Action::Mss(_) = self.action {
            if self.flags_set & crate::capture::TcpFlags::SYN == 0 {
                return invalid("an MSS option is only in SYN segments: add .syn() or .syn_ack()");
            }
        }
        Ok(())
    }
}

/// Everything a wire does: one fault program per direction, the rules, the seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireSpec {
    /// Toward the peer.
    pub to_peer: Faults,
    /// From the peer.
    pub from_peer: Faults,
    /// Packet rules, applied in order before the faults.
    pub rules: Vec<Rule>,
    /// Every random choice comes from this (`None`: one is drawn and reported).
    pub seed: Option<u64>,
}

impl Default for WireSpec {
    /// A perfect wire.
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

impl WireSpec {
    /// The same faults in each direction (`delay` 50 ms makes a 100 ms round trip).
    pub fn new(each_way: Faults) -> Self {
        Self {
            to_peer: each_way.clone(),
            from_peer: each_way,
            rules: Vec::new(),
            seed: None,
        }
    }

    /// Sets the faults toward the peer.
    #[must_use]
    pub fn to_peer(mut self, faults: Faults) -> Self {
        self.to_peer = faults;
        self
    }

    /// Sets the faults from the peer.
    #[must_use]
    pub fn from_peer(mut self, faults: Faults) -> Self {
        self.from_peer = faults;
        self
    }

    /// Adds a packet rule.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Fixes the seed of every random choice.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The faults of `direction`.
    pub fn faults(&self, direction: Direction) -> &Faults {
        match direction {
            Direction::ToPeer => &self.to_peer,
            Direction::FromPeer => &self.from_peer,
        }
    }

    /// Whether `direction` passes its packets untouched (no fault, no rule), so that it
    /// may carry GSO super-packets unsegmented.
    pub fn passes_through(&self, direction: Direction) -> bool {
        self.faults(direction).is_perfect()
            && !self.rules.iter().any(|r| r.directions.contains(&direction))
    }

    /// Refuses what cannot run as asked, naming the value.
    pub fn validate(&self) -> Result<()> {
        self.to_peer.validate("to_peer")?;
        self.from_peer.validate("from_peer")?;
        self.rules
            .iter()
            .enumerate()
            .try_for_each(|(i, r)| r.validate(i))
    }
}

/// SplitMix64: a tiny, seedable, well-mixed generator (Steele, Lea, Flood 2014). Every
/// random choice of a wire comes from one of these.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // The reference implementation's first outputs for seed 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let u = SplitMix64::new(7).unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let bad = [
            (Faults::new().loss(1.5), "loss 1.5"),
            (Faults::new().loss(-0.1), "loss -0.1"),
            (Faults::new().duplicate(2.0), "duplicate 2"),
            (Faults::new().limit(0), "limit 0"),
            (Faults::new().rate_bps(0), "rate 0"),
            (Faults::new().loss_model(Loss::EveryNth(0)), "every 0th"),
        ];
        for (faults, what) in bad {
            let err = WireSpec::new(faults).validate().unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
        let rule = Rule::to_peer().flags(0x02, 0x02);
        let err = WireSpec::default().rule(rule).validate().unwrap_err();
        assert!(err.to_string().contains("rule 1"), "{err}");
        let mss = Rule::to_peer().then(Action::Mss(500));
        assert!(WireSpec::default().rule(mss).validate().is_err());
        assert!(
            WireSpec::new(Faults::new().delay(Duration::from_millis(5)).loss(0.01))
                .rule(Rule::from_peer().syn_ack().nth(1))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn a_direction_passes_through_only_without_faults_and_rules() {
        let spec = WireSpec::default();
        assert!(spec.passes_through(Direction::ToPeer));
        let spec = spec.rule(Rule::from_peer().syn_ack().nth(1));
        assert!(spec.passes_through(Direction::ToPeer));
        assert!(!spec.passes_through(Direction::FromPeer));
        let spec = WireSpec::new(Faults::new().limit(10));
        assert!(spec.passes_through(Direction::FromPeer));
        let spec = spec.to_peer(Faults::new().delay(Duration::from_millis(1)));
        assert!(!spec.passes_through(Direction::ToPeer));
    }
}
