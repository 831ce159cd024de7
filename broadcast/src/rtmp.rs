//! RTMP egress, the pure part: which URLs are accepted, how they are shown (without the stream
//! key, which is a secret), and the command line of a push. A push copies the top rung from
//! tern's own HLS output into FLV over RTMP: no second encode, and a push that fails (its server
//! is down, the key is wrong) never touches the ladder or the other pushes.

use std::path::Path;

use tern_recording::args::QUIET_WITH_PROGRESS;

/// The longest URL accepted.
const MAX_URL: usize = 2048;

/// Checks an RTMP target URL: `rtmp://` or `rtmps://`, a host, an application path, no spaces
/// or control characters. Returns why not.
pub fn check_rtmp_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(format!("an RTMP URL is at most {MAX_URL} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an RTMP URL has no spaces or control characters".into());
    }
    let rest = url
        .strip_prefix("rtmp://")
        .or_else(|| url.strip_prefix("rtmps://"))
        .ok_or_else(|| format!("{:?} is not an rtmp:// or rtmps:// URL", shown_url(url)))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (h, after.strip_prefix(':')),
            None => ("", None),
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{:?} has no host", shown_url(url)));
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(format!("{:?} has a bad port", shown_url(url)));
    }
    // An application and a stream name (the key): rtmp://host/app/key.
    let path = path.split('?').next().unwrap_or("");
    match path.split_once('/') {
        Some((app, key)) if !app.is_empty() && !key.is_empty() && !key.ends_with('/') => {}
        _ => {
            return Err(format!(
                "{:?} names no application and stream key (rtmp://host/app/key)",
                shown_url(url)
            ));
        }
    }
    Ok(())
}

/// The URL as the API shows it: scheme, host and application; everything after the application
/// (the stream key, a query) and any user info replaced by `****`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "****".into();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("****@{host}"),
        None => authority.to_string(),
    };
    let app = path.split(['/', '?']).next().unwrap_or("");
    if path.len() > app.len() || path.is_empty() {
        format!("{scheme}://{authority}/{app}/****")
    } else {
        // One path segment: it may be the key itself.
        format!("{scheme}://{authority}/****")
    }
}

/// What of `url` is secret: the user info and everything after the application (the stream
/// key, a query), to be hidden wherever ffmpeg repeats it.
pub fn secrets_of(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut out = Vec::new();
    if let Some((user, _)) = authority.rsplit_once('@') {
        out.push(user.to_string());
    }
    let app = path.split(['/', '?']).next().unwrap_or("");
    let after = path[app.len()..].trim_start_matches(['/', '?']);
    if !after.is_empty() {
        out.push(after.to_string());
    }
    out
}

/// The ffmpeg arguments of a push of the media playlist `playlist` (tern's top rung, read from
/// its live edge) to `url`.
pub fn push_args(playlist: &Path, url: &str) -> Vec<String> {
    let mut args: Vec<String> = QUIET_WITH_PROGRESS.map(String::from).to_vec();
    args.extend(
        [
            "-protocol_whitelist",
            "file,tcp,tls,rtmp,rtmps",
            // Start at the newest segment, not three from the end: viewers get the least delay.
            "-live_start_index",
            "-1",
            "-i",
            &playlist.display().to_string(),
            "-map",
            "0:v:0",
            "-map",
            "0:a:0",
            "-c",
            "copy",
            "-f",
            "flv",
            "-flvflags",
            "no_duration_filesize",
            // A server that stops reading for 10 s is down: exit, and the push is retried.
            "-rw_timeout",
            "10000000",
            url,
        ]
        .map(String::from),
    );
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rtmp_urls_pass_and_bad_ones_say_why() {
        for good in [
            "rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl",
            "rtmps://live-api-s.facebook.com:443/rtmp/FB-123",
            "rtmp://127.0.0.1:1935/live/key",
            "rtmp://user:pass@host/app/key",
            "rtmp://[::1]:1935/live/key",
        ] {
            assert_eq!(check_rtmp_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("http://host/app/key", "not an rtmp"),
            ("rtmp://", "no host"),
            ("rtmp:///app/key", "no host"),
            ("rtmp://host", "no application"),
            ("rtmp://host/", "no application"),
            ("rtmp://host/KEY", "no application"),
            ("rtmp://host/app/", "no application"),
            ("rtmp://host/app/key/", "no application"),
            ("rtmp://host:99999/app/key", "bad port"),
            ("rtmp://host/app/key with space", "no spaces"),
            ("rtmp://host/app/k\u{0}ey", "no spaces"),
        ] {
            let e = check_rtmp_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_rtmp_url(&format!("rtmp://h/a/{}", "k".repeat(3000))).is_err());
    }

    #[test]
    fn the_stream_key_is_never_shown() {
        assert_eq!(
            shown_url("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl"),
            "rtmp://a.rtmp.youtube.com/live2/****"
        );
        assert_eq!(
            shown_url("rtmp://user:secret@host:1935/app/key"),
            "rtmp://****@host:1935/app/****"
        );
        assert_eq!(shown_url("rtmp://host/KEY"), "rtmp://host/****");
        assert_eq!(shown_url("rtmp://host/app/KEY/"), "rtmp://host/app/****");
        assert_eq!(shown_url("rtmp://host/app/a/KEY"), "rtmp://host/app/****");
        assert_eq!(shown_url("rtmp://host/app?key=KEY"), "rtmp://host/app/****");
        assert_eq!(shown_url("garbage"), "****");
        assert_eq!(
            secrets_of("rtmp://u:p@host/app/KEY?x=1"),
            ["u:p", "KEY?x=1"]
        );
        assert_eq!(secrets_of("rtmp://host/live2/abc-def"), ["abc-def"]);
    }

    #[test]
    fn a_push_copies_the_top_rung_from_the_live_edge() {
        let args = push_args(Path::new("/s/BC_1/hls/720p/index.m3u8"), "rtmp://h/app/key");
        let after = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
        assert_eq!(after("-i").as_deref(), Some("/s/BC_1/hls/720p/index.m3u8"));
        assert_eq!(after("-c").as_deref(), Some("copy"));
        assert_eq!(after("-f").as_deref(), Some("flv"));
        assert_eq!(after("-live_start_index").as_deref(), Some("-1"));
        assert_eq!(args.last().map(String::as_str), Some("rtmp://h/app/key"));
    }
}
