//! `lab.link` and `lab.rules` of a claim file: the wire between the client and its peer
//! (delay, jitter, loss, duplication, reordering, corruption, a rate with a bounded
//! queue, a seed) and packet rules, turned into the harness's [`WireSpec`].
//!
//! ```toml
//! [claim.lab]
//! server = "reject"
//! link = { delay = "50ms", jitter = "5ms", loss = "1%", seed = 7 }   # each way
//! # link.to_peer / link.from_peer: keys for one direction, over the ones above
//! rules = [{ toward = "client", flags = "SA", nth = 1, action = "drop" }]
//! ```

use std::time::Duration;

use netclaim_harness::capture::TcpFlags;
use netclaim_harness::wire::{Action, Distribution, Faults, Jitter, Loss, Rule, WireSpec};
use serde::{Deserialize, Serialize};

use crate::spec::{Server, Span};

/// The faults of one direction as a claim file writes them; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultKeys {
    /// One-way delay (`"50ms"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Span>,
    /// Uniform jitter around the delay (`"5ms"`); packets keep their order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Span>,
    /// Whether jitter may reorder (netem's behaviour); off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_reorders: Option<bool>,
    /// Random loss (`"1%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    /// Lose exactly every Nth packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_every: Option<u64>,
    /// Duplicate (`"1%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<Percent>,
    /// Reorder: a packet skips the delay (`"10%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<Percent>,
    /// Flip a bit (`"0.1%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<Percent>,
    /// Rate (`"10mbit"`, `"512kbit"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// The most packets held at once (default 1000, as netem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `lab.link`: faults each way, per-direction overrides, the seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One-way delay, each way: `delay = "50ms"` is a 100 ms round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Span>,
    /// Jitter, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Span>,
    /// Whether jitter may reorder, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_reorders: Option<bool>,
    /// Random loss, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    /// Every Nth packet lost, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_every: Option<u64>,
    /// Duplication, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<Percent>,
    /// Reordering, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<Percent>,
    /// Corruption, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<Percent>,
    /// Rate, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Queue bound in packets, each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The seed of every random choice (the report records the one used either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Keys for the direction toward the peer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_peer: Option<FaultKeys>,
    /// Keys for the direction from the peer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_peer: Option<FaultKeys>,
}

/// A percentage, `"1%"` or `"0.5%"`, from 0 % to 100 %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl Percent {
    /// Parses `"1.5%"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let number = text.trim().strip_suffix('%').ok_or_else(|| {
            format!("{text:?} is not a percentage: write it as \"1%\" or \"0.5%\"")
        })?;
        match number.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Self(p / 100.0)),
            _ => Err(format!("{text:?}: a percentage is from 0% to 100%")),
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0 * 100.0))
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Percent::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A rate in bits per second, written as tc does: `"10mbit"`, `"512kbit"`, `"1gbit"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl Rate {
    /// Parses `"10mbit"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = crate::spec::number_and_unit(text);
        let scale = match unit {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => {
                return Err(format!(
                "{text:?} is not a rate: write it as tc does, \"512kbit\", \"10mbit\" or \"1gbit\""
            ))
            }
        };
        match number.parse::<f64>() {
            Ok(n) if n * scale >= 1.0 && n * scale <= 100e9 => Ok(Self((n * scale) as u64)),
            _ => Err(format!("{text:?}: a rate is from 1bit to 100gbit")),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}bit", self.0))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rate::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Which way a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Toward {
    /// Segments the client sends.
    Peer,
    /// Segments the peer sends.
    Client,
    /// Either.
    Both,
}

/// One packet rule as a claim file writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Which way: `peer` (what the client sends), `client` (what the peer sends), `both`.
    pub toward: Toward,
    /// TCP flags that must be set, as tcpdump writes them: `"S"` a SYN, `"SA"` a
    /// SYN-ACK, `"F"`, `"R"`, `"P"`, `"A"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// TCP flags that must be clear (`flags = "S", not_flags = "A"`: a connection request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_flags: Option<String>,
    /// Only the Nth segment that matches the rest (1 is the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// Only segments carrying stream bytes past this offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bytes: Option<u64>,
    /// `"drop"`, `"reset"`, `"delay 1s"`, `"window 0"`, `"mss 536"`,
    /// `"icmp host-unreachable"` (or `port-unreachable`, `admin-prohibited`).
    pub action: String,
}

fn flag_bits(field: &str, text: &str) -> Result<u8, String> {
    text.chars().try_fold(0u8, |bits, c| {
        let bit = match c {
            'S' => TcpFlags::SYN,
            'A' => TcpFlags::ACK,
            'F' => TcpFlags::FIN,
            'R' => TcpFlags::RST,
            'P' => TcpFlags::PSH,
            _ => {
                return Err(format!(
                    "{field} = {text:?}: {c:?} is not a TCP flag (S, A, F, R, P, as tcpdump writes them)"
                ))
            }
        };
        Ok(bits | bit)
    })
}

fn action(text: &str) -> Result<Action, String> {
    let mut words = text.split_whitespace();
    let (verb, arg, rest) = (words.next(), words.next(), words.next());
    let number = |what: &str, arg: Option<&str>| -> Result<u16, String> {
        arg.and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("action {text:?}: {what} takes a number from 0 to 65535"))
    };
    let action = match (verb, arg) {
        (Some("drop"), None) => Action::Drop,
        (Some("reset"), None) => Action::Reset,
        (Some("delay"), Some(d)) => Action::Delay(Span::parse(d)?.0),
        (Some("window"), arg) => Action::Window(number("window", arg)?),
        (Some("mss"), arg) => Action::Mss(number("mss", arg)?),
        (Some("icmp"), Some(kind)) => Action::IcmpUnreachable(match kind {
            "host-unreachable" => 1,
            "port-unreachable" => 3,
            "admin-prohibited" => 13,
            _ => {
                return Err(format!(
                    "action {text:?}: the ICMP errors are host-unreachable, port-unreachable and admin-prohibited"
                ))
            }
        }),
        _ => {
            return Err(format!(
                "action {text:?}: write \"drop\", \"reset\", \"delay 1s\", \"window 0\", \"mss 536\" or \"icmp port-unreachable\""
            ))
        }
    };
    match rest {
        None => Ok(action),
        Some(_) => Err(format!("action {text:?}: one action per rule")),
    }
}

impl RuleSpec {
    /// The harness's rule, or what is wrong with this one. `index` counts from 1.
    pub fn rule(&self, index: usize) -> Result<Rule, String> {
        let here = |e: String| format!("lab.rules[{index}]: {e}");
        let set = flag_bits("flags", self.flags.as_deref().unwrap_or("")).map_err(here)?;
        let clear =
            flag_bits("not_flags", self.not_flags.as_deref().unwrap_or("")).map_err(here)?;
        if set & clear != 0 {
            return Err(here(
                "a flag in both flags and not_flags: the rule matches nothing".into(),
            ));
        }
        if self.nth == Some(0) {
            return Err(here("nth counts from 1".into()));
        }
        let action = action(&self.action).map_err(here)?;
        if let Action::Mss(_) = action {
            if set & TcpFlags::SYN == 0 {
                return Err(here(
                    "an MSS option is only in SYN segments: add flags = \"S\" (or \"SA\")".into(),
                ));
            }
        }
        // With a link the client is on one side and every server on the other: the client
        // never answers a SYN, and the peer never opens a connection.
        let syn_only = set & TcpFlags::SYN != 0 && clear & TcpFlags::ACK != 0;
        let syn_ack = set & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN | TcpFlags::ACK;
        match self.toward {
            Toward::Peer if syn_ack => {
                return Err(here(
                    "the client sends no SYN-ACK (it answers no connection): a SYN-ACK travels toward the client".into(),
                ))
            }
            Toward::Client if syn_only => {
                return Err(here(
                    "the peer opens no connection: a SYN without ACK travels toward the peer".into(),
                ))
            }
            _ => {}
        }
        let rule = match self.toward {
            Toward::Peer => Rule::to_peer(),
            Toward::Client => Rule::from_peer(),
            Toward::Both => Rule::both(),
        };
        let mut rule = rule.flags(set, clear).then(action);
        if let Some(n) = self.nth {
            rule = rule.nth(n);
        }
        if let Some(b) = self.after_bytes {
            rule = rule.after_bytes(b);
        }
        Ok(rule)
    }
}

/// The servers a link can stand in front of: those on the peer's side of it.
pub const LINKED_SERVERS: &[Server] = &[
    Server::None,
    Server::Refuse,
    Server::DropSyn,
    Server::Blackhole,
    Server::Reject,
    Server::Silent,
    Server::NeverAccept,
    Server::Http,
    Server::DiesAfterHandshake,
    Server::Trickle,
    Server::Reply,
    Server::Sink,
];

fn faults(keys: [&FaultKeys; 2]) -> Faults {
    // The later keys (one direction's) win over the earlier (each way's).
    let pick = |f: fn(&FaultKeys) -> Option<_>| keys.iter().rev().find_map(|k| f(k));
    let mut faults = Faults::new();
    if let Some(Span(d)) = pick(|k| k.delay) {
        faults = faults.delay(d);
    }
    if let Some(Span(spread)) = pick(|k| k.jitter) {
        faults = faults.jitter_with(Jitter {
            spread,
            distribution: Distribution::Uniform,
            reorders: keys
                .iter()
                .rev()
                .find_map(|k| k.jitter_reorders)
                .unwrap_or(false),
        });
    }
    let loss = keys
        .iter()
        .rev()
        .find_map(|k| match (k.loss, k.loss_every) {
            (Some(Percent(p)), _) => Some(Loss::Random(p)),
            (None, Some(n)) => Some(Loss::EveryNth(n)),
            (None, None) => None,
        });
    if let Some(loss) = loss {
        faults = faults.loss_model(loss);
    }
    if let Some(Percent(p)) = keys.iter().rev().find_map(|k| k.duplicate) {
        faults = faults.duplicate(p);
    }
    if let Some(Percent(p)) = keys.iter().rev().find_map(|k| k.reorder) {
        faults = faults.reorder(p);
    }
    if let Some(Percent(p)) = keys.iter().rev().find_map(|k| k.corrupt) {
        faults = faults.corrupt(p);
    }
    if let Some(Rate(bps)) = keys.iter().rev().find_map(|k| k.rate) {
        faults = faults.rate_bps(bps);
    }
    if let Some(n) = keys.iter().rev().find_map(|k| k.limit) {
        faults = faults.limit(n);
    }
    faults
}

impl LinkSpec {
    fn each_way(&self) -> FaultKeys {
        FaultKeys {
            delay: self.delay,
            jitter: self.jitter,
            jitter_reorders: self.jitter_reorders,
            loss: self.loss,
            loss_every: self.loss_every,
            duplicate: self.duplicate,
            reorder: self.reorder,
            corrupt: self.corrupt,
            rate: self.rate,
            limit: self.limit,
        }
    }

    /// The fixed one-way delays (to the peer, from the peer): their sum is the round
    /// trip a model takes for the link's RTT (jitter, queueing and the relays add to it).
    pub fn delays(&self) -> (Duration, Duration) {
        let spec = self.wire_spec(&[]).unwrap_or_default();
        (spec.to_peer.delay, spec.from_peer.delay)
    }

    /// The harness's wire for this link and `rules`, or every problem with them.
    pub fn wire_spec(&self, rules: &[RuleSpec]) -> Result<WireSpec, Vec<String>> {
        let each = self.each_way();
        let none = FaultKeys::default();
        let mut spec = WireSpec::default()
            .to_peer(faults([&each, self.to_peer.as_ref().unwrap_or(&none)]))
            .from_peer(faults([&each, self.from_peer.as_ref().unwrap_or(&none)]));
        spec.seed = self.seed;
        let mut problems = Vec::new();
        for (key, keys) in [
            ("lab.link", Some(&each)),
            ("lab.link.to_peer", self.to_peer.as_ref()),
            ("lab.link.from_peer", self.from_peer.as_ref()),
        ] {
            let Some(k) = keys else { continue };
            if k.loss.is_some() && k.loss_every.is_some() {
                problems.push(format!("{key}: give loss or loss_every, not both"));
            }
            if k.loss_every == Some(0) {
                problems.push(format!("{key}.loss_every = 0: every Nth counts from 1"));
            }
            if k.limit == Some(0) {
                problems.push(format!("{key}.limit = 0 would drop every packet"));
            }
            if k.reorder.is_some_and(|Percent(p)| p > 0.0)
                && [k.delay, each.delay]
                    .iter()
                    .flatten()
                    .all(|d| d.0.is_zero())
            {
                problems.push(format!(
                    "{key}.reorder needs a delay: a packet reorders by skipping the delay the others wait"
                ));
            }
        }
        for (i, r) in rules.iter().enumerate() {
            match r.rule(i + 1) {
                Ok(rule) => spec = spec.rule(rule),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            if let Err(e) = spec.validate() {
                problems.push(format!("lab.link: {e}"));
            }
        }
        match problems.is_empty() {
            true => Ok(spec),
            false => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(text: &str) -> LinkSpec {
        toml::from_str(text).expect("a link")
    }

    #[test]
    fn each_way_keys_and_one_direction_over_them() {
        let l =
            link("delay = \"50ms\"\nloss = \"1%\"\nseed = 7\nfrom_peer = { delay = \"10ms\" }\n");
        let w = l.wire_spec(&[]).unwrap();
        assert_eq!(w.to_peer.delay, Duration::from_millis(50));
        assert_eq!(w.from_peer.delay, Duration::from_millis(10));
        assert_eq!(w.from_peer.loss, Some(Loss::Random(0.01)));
        assert_eq!(w.seed, Some(7));
        assert_eq!(
            l.delays(),
            (Duration::from_millis(50), Duration::from_millis(10))
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (text, needle) in [
            ("loss = \"101%\"", "a percentage is from 0% to 100%"),
            ("loss = \"-1%\"", "a percentage is from 0% to 100%"),
            ("delay = \"-5ms\"", "is not a duration"),
            ("rate = \"10mbps\"", "is not a rate"),
            ("colour = 1", "unknown field `colour`"),
        ] {
            let e = toml::from_str::<LinkSpec>(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let l = link("loss_every = 0\nreorder = \"5%\"\n");
        let e = l.wire_spec(&[]).unwrap_err().join("\n");
        assert!(e.contains("every Nth counts from 1"), "{e}");
        assert!(e.contains("reorder needs a delay"), "{e}");
    }

    #[test]
    fn rules_that_match_nothing_the_lab_sends_are_refused() {
        let rule = |text: &str| toml::from_str::<RuleSpec>(text).expect("a rule");
        for (text, needle) in [
            (
                "toward = \"peer\"\nflags = \"SA\"\naction = \"drop\"",
                "the client sends no SYN-ACK",
            ),
            (
                "toward = \"client\"\nflags = \"S\"\nnot_flags = \"A\"\naction = \"drop\"",
                "the peer opens no connection",
            ),
            (
                "toward = \"both\"\nflags = \"A\"\nnot_flags = \"A\"\naction = \"drop\"",
                "matches nothing",
            ),
            (
                "toward = \"both\"\nflags = \"X\"\naction = \"drop\"",
                "is not a TCP flag",
            ),
            (
                "toward = \"both\"\nnth = 0\naction = \"drop\"",
                "nth counts from 1",
            ),
            (
                "toward = \"both\"\naction = \"mss 536\"",
                "only in SYN segments",
            ),
            ("toward = \"both\"\naction = \"explode\"", "write \"drop\""),
        ] {
            let e = rule(text).rule(1).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let first_syn_ack = rule("toward = \"client\"\nflags = \"SA\"\nnth = 1\naction = \"drop\"");
        let r = first_syn_ack.rule(1).unwrap();
        assert_eq!(r.nth, Some(1));
        assert_eq!(r.action, Action::Drop);
        let zero = rule("toward = \"client\"\nflags = \"A\"\naction = \"window 0\"").rule(1);
        assert_eq!(zero.unwrap().action, Action::Window(0));
    }
}
