//! The segment list ffmpeg's segment muxer writes (`-segment_list_type csv`): one line per
//! complete segment, `file,start,end`, times in seconds on the part's timeline.

/// One line of a segment list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSegment {
    /// The file name.
    pub file: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// The complete lines of a segment list; a torn last line (no newline yet) is left for later.
pub fn parse_list(text: &str) -> Vec<ListedSegment> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => return Vec::new(),
    };
    complete.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<ListedSegment> {
    let mut fields = line.trim_end_matches('\r').rsplitn(3, ',');
    let end = fields.next()?.trim().parse().ok()?;
    let start = fields.next()?.trim().parse().ok()?;
    let file = fields.next()?.trim_matches('"').to_string();
    (!file.is_empty()).then_some(ListedSegment { file, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_are_read_and_a_torn_one_waits() {
        let text = "composite-00000.mp4,0.000000,4.000000\ncomposite-00001.mp4,4.000000,8.040000\ncomposite-0000";
        let got = parse_list(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].file, "composite-00001.mp4");
        assert_eq!(got[1].start, 4.0);
        assert_eq!(got[1].end, 8.04);
        assert!(parse_list("a.mp4,0,1").is_empty(), "no newline yet");
        assert!(parse_list("garbage\n").is_empty());
    }
}
