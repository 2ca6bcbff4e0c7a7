//! The table's text: each row's cells, and the column widths that fit a terminal.
//!
//! The fixed columns are as wide as their widest cell; NAME is capped so that INFO (what a
//! starting service waits for, why it failed) keeps room; INFO takes the rest of the line
//! and is cut with `…`. At 80 columns every column but INFO fits the usual figures.

use std::time::{Duration, SystemTime};

use super::model::Row;
use crate::ipc::{format_uptime, last_exit};

pub const HEADERS: [&str; 9] = [
    "NAME",
    "STATUS",
    "PID",
    "UPTIME",
    "RESTARTS",
    "LAST EXIT",
    "CPU%",
    "MEM",
    "INFO",
];

/// The index of the STATUS column (coloured by state).
pub const STATUS: usize = 1;
const NAME: usize = 0;
const INFO: usize = 8;

/// Spaces between columns.
pub const SPACING: u16 = 1;

/// NAME gives way to INFO down to this width…
const NAME_MIN: usize = 8;
/// …while INFO has less than this.
const INFO_MIN: usize = 16;

/// A row's cells, in the order of [`HEADERS`], at `now` (for INFO's countdown).
pub fn cells(row: &Row, now: SystemTime) -> [String; 9] {
    let info = &row.info;
    [
        info.name.clone(),
        info.status.clone(),
        info.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        info.uptime_ms.map_or_else(
            || "-".to_owned(),
            |ms| format_uptime(Duration::from_millis(ms)),
        ),
        info.restarts.to_string(),
        last_exit(&info.exits),
        row.cpu_percent.map_or_else(|| "-".to_owned(), cpu),
        row.memory_bytes.map_or_else(|| "-".to_owned(), memory),
        row.info_text(now),
    ]
}

/// `0.0`, `12.5`, `150`: tenths below 100 %.
pub fn cpu(percent: f64) -> String {
    if percent < 99.95 {
        format!("{percent:.1}")
    } else {
        format!("{percent:.0}")
    }
}

/// Resident memory in binary units as `top` shows it: `512K`, `12.3M`, `734M`, `1.2G`.
pub fn memory(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * K {
        format!("{:.0}K", b / K)
    } else if b < 100.0 * K * K {
        format!("{:.1}M", b / (K * K))
    } else if b < K * K * K {
        format!("{:.0}M", b / (K * K))
    } else {
        format!("{:.1}G", b / (K * K * K))
    }
}

/// The width of each column for rows of `cells` on a line of `total` columns. INFO gets
/// what is left (0 when nothing is).
pub fn widths(cells: &[[String; 9]], total: u16) -> [u16; 9] {
    let mut natural = HEADERS.map(|h| h.chars().count());
    for row in cells {
        for (width, cell) in natural.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let total = usize::from(total);
    let gaps = usize::from(SPACING) * (HEADERS.len() - 1);
    let fixed: usize = natural[STATUS..INFO].iter().sum::<usize>() + gaps;
    // NAME keeps its natural width while INFO keeps INFO_MIN; else it gives way down to
    // NAME_MIN (INFO may then shrink to nothing on a very narrow terminal).
    let room = total.saturating_sub(fixed);
    let name = if room >= natural[NAME] + INFO_MIN {
        natural[NAME]
    } else {
        room.saturating_sub(INFO_MIN)
            .max(NAME_MIN)
            .min(natural[NAME])
            .min(room)
    };
    // A sliver of INFO would show only `…`.
    let info = match room.saturating_sub(name) {
        sliver if sliver < 4 => 0,
        info => info,
    };
    let mut out = [0u16; 9];
    for (i, width) in natural.iter().enumerate() {
        let w = match i {
            NAME => name,
            INFO => info,
            _ => *width,
        };
        out[i] = u16::try_from(w).unwrap_or(u16::MAX);
    }
    out
}

/// `text` cut to `width` columns, ending in `…` when it was longer.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, info: &str) -> [String; 9] {
        [
            name.into(),
            "starting".into(),
            "1234567".into(),
            "3m12s".into(),
            "12".into(),
            "code 137".into(),
            "12.5".into(),
            "12.3M".into(),
            info.into(),
        ]
    }

    #[test]
    fn figures_read_at_a_glance() {
        assert_eq!(cpu(0.0), "0.0");
        assert_eq!(cpu(12.54), "12.5");
        assert_eq!(cpu(150.2), "150");
        assert_eq!(memory(512 * 1024), "512K");
        assert_eq!(memory(12 * 1024 * 1024 + 300 * 1024), "12.3M");
        assert_eq!(memory(734 * 1024 * 1024), "734M");
        assert_eq!(memory(1288 * 1024 * 1024), "1.3G");
    }

    #[test]
    fn at_80_columns_everything_fits_and_info_takes_the_rest() {
        let cells = vec![row("web", "waiting for db (starting)"), row("db", "")];
        let w = widths(&cells, 80);
        let used: u16 = w.iter().sum::<u16>() + SPACING * 8;
        assert_eq!(used, 80, "{w:?}");
        assert_eq!(w[NAME], 4);
        assert_eq!(w[STATUS], 8);
        assert_eq!(w[5], 9);
        assert!(w[INFO] >= 16, "{w:?}");
    }

    #[test]
    fn a_long_name_gives_way_to_info() {
        let long = "a-very-long-service-name-that-goes-on-and-on";
        let w = widths(&[row(long, "x")], 80);
        assert_eq!((w[NAME], w[INFO]), (9, 16), "{w:?}");
        assert_eq!(w.iter().sum::<u16>() + SPACING * 8, 80);
        // Wide terminals show it whole.
        let w = widths(&[row(long, "x")], 200);
        assert_eq!(usize::from(w[NAME]), long.len());
    }

    #[test]
    fn a_narrow_terminal_loses_info_first() {
        let w = widths(&[row("web", "x")], 60);
        assert_eq!((w[NAME], w[INFO]), (4, 0), "{w:?}");
        let w = widths(&[row("web", "x")], 0);
        assert_eq!(w[INFO], 0);
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("waiting for db", 20), "waiting for db");
        assert_eq!(truncate("waiting for db", 8), "waiting…");
        assert_eq!(truncate("x", 0), "");
    }
}
