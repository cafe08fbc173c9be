use std::time::Duration;

use crate::gemini::upstream::{error_message, retry_delay};

const QUOTA_ERROR: &str = r#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "10"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "22s"
      }
    ]
  }
}"#;

#[test]
fn error_bodies() {
    assert_eq!(
        error_message(QUOTA_ERROR.as_bytes()),
        Some((
            "RESOURCE_EXHAUSTED".to_owned(),
            "You exceeded your current quota, please check your plan and billing details.".to_owned()
        ))
    );
    assert_eq!(retry_delay(QUOTA_ERROR.as_bytes()), Some(Duration::from_secs(22)));
    // The array form (streamGenerateContent without alt=sse).
    let array = format!("[{QUOTA_ERROR}]");
    assert_eq!(error_message(array.as_bytes()).unwrap().0, "RESOURCE_EXHAUSTED");
    assert_eq!(retry_delay(array.as_bytes()), Some(Duration::from_secs(22)));
    // Missing fields are empty.
    assert_eq!(error_message(br#"{"error":{"code":400}}"#), Some((String::new(), String::new())));
    assert_eq!(
        error_message(br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#),
        Some(("INVALID_ARGUMENT".to_owned(), "API key not valid.".to_owned()))
    );
    for body in [&b"not json"[..], b"{}", br#"{"error":null}"#, br#"{"error":"text"}"#, b"[]", br#"{"candidates":[]}"#]
    {
        assert_eq!(error_message(body), None, "{}", String::from_utf8_lossy(body));
        assert_eq!(retry_delay(body), None);
    }
}

#[test]
fn retry_delays() {
    let body = |delay: &str| {
        format!(
            r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{delay}}}]}}}}"#
        )
    };
    for (delay, expected) in [
        (r#""22s""#, Some(Duration::from_secs(22))),
        (r#""1.5s""#, Some(Duration::from_millis(1500))),
        (r#""0.000001s""#, Some(Duration::from_micros(1))),
        (r#""3.123456789s""#, Some(Duration::new(3, 123_456_789))),
        (r#""0s""#, Some(Duration::ZERO)),
        (r#""3.1234567891s""#, None),
        (r#""-1s""#, None),
        (r#""+1s""#, None),
        (r#""1""#, None),
        (r#"".5s""#, None),
        (r#""1.s""#, Some(Duration::from_secs(1))),
        (r#""abc""#, None),
        ("22", None),
        (r#"{"seconds":22}"#, None),
    ] {
        assert_eq!(retry_delay(body(delay).as_bytes()), expected, "{delay}");
    }
    // Only a RetryInfo detail counts.
    let other = r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.Help","retryDelay":"5s"},{"retryDelay":"6s"}]}}"#;
    assert_eq!(retry_delay(other.as_bytes()), None);
    assert_eq!(retry_delay(br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}"#), None);
}
