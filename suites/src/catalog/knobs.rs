//! Sysctls the built-in claims set in their labs: a knob the kernel lacks or rejects
//! makes the claim not applicable, whatever topic it belongs to.

/// Turns a sysctl the kernel lacks or rejects into a not-applicable measurement
/// (`Ok(Observation::Forced(NotApplicable, why))`, returned from the enclosing measuring
/// function); any other error propagates.
macro_rules! or_na {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => match $crate::measure::labs::refusal(&e) {
                Some(why) => {
                    return Ok($crate::claim::Observation::Forced(
                        $crate::claim::Verdict::NotApplicable,
                        why,
                    ))
                }
                None => return Err(anyhow::Error::from(e)),
            },
        }
    };
}
pub(crate) use or_na;
