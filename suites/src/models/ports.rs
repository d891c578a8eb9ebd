//! Which local ports connect() can use: the kernel's ephemeral range in force, less the
//! reserved ones. Read by the port claims and by judging an exhaust client's claim file.

/// How many ports connect() can use in `[low, high]`, as (fewest, most), minus the
/// reserved ones listed in `reserved` (the text of `ip_local_reserved_ports`).
///
/// `__inet_hash_connect()` scans `remaining = high + 1 - low` ports, rounded down to an
/// even number when more than one, starting at a per-destination offset that moves only
/// after a successful connect. With an even range every port is reachable; with an odd
/// range each call reaches all ports but one, and which one depends on that offset, so
/// the count before the first EADDRNOTAVAIL is `size - 1` or `size`.
pub fn usable_ports(low: u16, high: u16, reserved: &str) -> (usize, usize) {
    if high < low {
        return (0, 0);
    }
    let size = usize::from(high - low) + 1;
    let reserved_in_range = parse_port_list(reserved)
        .into_iter()
        .filter(|p| (low..=high).contains(p))
        .count();
    let most = size.saturating_sub(reserved_in_range);
    let fewest = if size > 1 && size % 2 == 1 {
        most.saturating_sub(1)
    } else {
        most
    };
    (fewest, most)
}

fn parse_port_list(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    ports.extend(a..=b);
                }
            }
            None => ports.extend(part.parse::<u16>().ok()),
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_ports_of_odd_ranges() {
        assert_eq!(usable_ports(40000, 40003, ""), (4, 4));
        assert_eq!(usable_ports(40000, 40004, ""), (4, 5));
        assert_eq!(usable_ports(40000, 40000, ""), (1, 1));
        assert_eq!(usable_ports(40000, 40003, "40001,50000-50010"), (3, 3));
        assert_eq!(usable_ports(32768, 60999, ""), (28232, 28232));
    }
}
