//! SYN timeline charts: the model's predicted SYN send times and give-up time above the
//! measured ones, on one time axis, like the seeds' tcpdump listings drawn to scale.

use std::fmt::Write as _;

use netclaim_suites::claim::Timeline;

use crate::report::xml;

/// An SVG chart of `t`, `width` pixels wide.
pub fn timeline(t: &Timeline, width: u32) -> String {
    let end_ms = t
        .observed_ms
        .iter()
        .chain(&t.predicted_ms)
        .copied()
        .chain(t.predicted_give_up_ms)
        .chain(t.observed_give_up_ms)
        .max()
        .unwrap_or(0)
        .max(1000);
    let (left, right) = (80.0, 20.0);
    let w = f64::from(width);
    let x = |ms: u64| left + (w - left - right) * ms as f64 / end_ms as f64;
    let height = 90;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"10\">"
    );
    let _ = write!(s, "<title>{}</title>", xml(&t.label));
    let _ = write!(s, "<text x=\"4\" y=\"12\">{}</text>", xml(&t.label));
    for (row, label, times, give_up, color, filled) in [
        (
            30.0,
            "model",
            &t.predicted_ms,
            t.predicted_give_up_ms,
            "#57606a",
            false,
        ),
        (
            55.0,
            "measured",
            &t.observed_ms,
            t.observed_give_up_ms,
            "#0969da",
            true,
        ),
    ] {
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{}\">{label}</text><line x1=\"{left}\" y1=\"{row}\" x2=\"{}\" y2=\"{row}\" stroke=\"#d0d7de\"/>",
            row + 3.0,
            w - right
        );
        for ms in times {
            let fill = if filled { color } else { "white" };
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{row}\" r=\"4\" fill=\"{fill}\" stroke=\"{color}\"><title>SYN at {:.3} s</title></circle>",
                x(*ms),
                *ms as f64 / 1000.0
            );
        }
        if let Some(g) = give_up {
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#cf222e\" stroke-width=\"2\"><title>gives up at {:.3} s</title></line>",
                row - 8.0,
                row + 8.0,
                g as f64 / 1000.0,
                x = x(g)
            );
        }
    }
    // Axis ticks in seconds.
    let step = nice_step(end_ms);
    let mut tick = 0;
    while tick <= end_ms {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#57606a\">{}</text>",
            x(tick),
            height - 6,
            tick / 1000
        );
        tick += step;
    }
    s.push_str("</svg>");
    s
}

/// A tick spacing giving at most ~10 ticks: 1, 2, 5, 10, 20, 50 … seconds.
fn nice_step(end_ms: u64) -> u64 {
    [1, 2, 5, 10, 20, 50, 100, 200, 500]
        .into_iter()
        .map(|s| s * 1000)
        .find(|step| end_ms / step <= 10)
        .unwrap_or(1_000_000)
}

/// A standalone SVG file of every timeline of a claim, stacked.
pub fn document(id: &str, timelines: &[Timeline]) -> String {
    let width = 720;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\"><title>{}</title>",
        timelines.len() * 95,
        xml(id)
    );
    for (i, t) in timelines.iter().enumerate() {
        let _ = write!(
            s,
            "<g transform=\"translate(0,{})\">{}</g>",
            i * 95,
            timeline(t, width)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_few() {
        assert_eq!(nice_step(3_000), 1000);
        assert_eq!(nice_step(19_000), 2000);
        assert_eq!(nice_step(40_000), 5000);
        assert_eq!(nice_step(133_000), 20_000);
    }

    #[test]
    fn chart_has_a_circle_per_syn() {
        let t = Timeline {
            label: "x".into(),
            observed_ms: vec![0, 1000, 3000],
            observed_us: vec![0, 1_000_000, 3_000_000],
            predicted_ms: vec![0, 1000, 3000],
            predicted_give_up_ms: Some(7000),
            observed_give_up_ms: Some(7010),
        };
        assert_eq!(timeline(&t, 400).matches("<circle").count(), 6);
    }
}
