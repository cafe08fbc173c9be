//! Body framing and request encoding. The connection itself is exercised against
//! scripted servers in `client_tests.rs` and by every integration test.

use super::*;

/// Decodes `wire` delivered in the given pieces; returns the body and whether the
/// decoder reached the end of the body.
fn decode_pieces(mut framing: Framing, pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), UpstreamError> {
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut pieces = pieces.iter();
    loop {
        match decode(&mut framing, &mut buf)? {
            Step::Data(data) => body.extend_from_slice(&data),
            Step::Again => {}
            Step::Done => return Ok((body, true)),
            Step::Fill => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return Ok((body, false)),
            },
        }
    }
}

const CHUNKED: &[u8] = b"5\r\nhello\r\n1a;ext=1\r\n abcdefghijklmnopqrstuvwxy\r\n0\r\nx-trailer: 1\r\n\r\n";
const CHUNKED_BODY: &[u8] = b"hello abcdefghijklmnopqrstuvwxy";

#[test]
fn chunked_body_decodes_the_same_for_every_split() {
    for cut in 0..=CHUNKED.len() {
        let (first, second) = CHUNKED.split_at(cut);
        let (body, done) = decode_pieces(Framing::Chunked(Chunk::Size), &[first, second]).unwrap();
        assert_eq!(body, CHUNKED_BODY, "split at {cut}");
        assert!(done, "split at {cut}");
    }
    // One byte at a time.
    let bytes: Vec<&[u8]> = CHUNKED.chunks(1).collect();
    let (body, done) = decode_pieces(Framing::Chunked(Chunk::Size), &bytes).unwrap();
    assert_eq!((body.as_slice(), done), (CHUNKED_BODY, true));
}

#[test]
fn chunked_body_without_its_last_chunk_is_not_done() {
    let cut = CHUNKED.len() - 5;
    let (body, done) = decode_pieces(Framing::Chunked(Chunk::Size), &[&CHUNKED[..cut]]).unwrap();
    assert_eq!(body, CHUNKED_BODY);
    assert!(!done);
}

#[test]
fn malformed_chunked_bodies_are_protocol_errors() {
    for wire in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n",
        b"1000000000000000\r\n",
    ] {
        let error = decode_pieces(Framing::Chunked(Chunk::Size), &[wire]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Protocol, "{:?}", String::from_utf8_lossy(wire));
    }
    let long_line = vec![b'1'; MAX_LINE + 1];
    assert!(decode_pieces(Framing::Chunked(Chunk::Size), &[&long_line]).is_err());
}

#[test]
fn length_framing_stops_at_the_length() {
    let (body, done) = decode_pieces(Framing::Length(5), &[b"he", b"llo"]).unwrap();
    assert_eq!((body.as_slice(), done), (&b"hello"[..], true));
    let (body, done) = decode_pieces(Framing::Length(5), &[b"hel"]).unwrap();
    assert_eq!((body.as_slice(), done), (&b"hel"[..], false));
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn framing_follows_rfc_9112_precedence() {
    let ok = StatusCode::OK;
    let v11 = Version::HTTP_11;
    let frame = |pairs: &[(&'static str, &'static str)]| framing(ok, v11, &headers(pairs)).unwrap();
    assert_eq!(frame(&[("content-length", "12")]), (Framing::Length(12), true));
    assert_eq!(frame(&[("content-length", "0")]), (Framing::Done, true));
    assert_eq!(frame(&[("transfer-encoding", "chunked")]), (Framing::Chunked(Chunk::Size), true));
    // Transfer-Encoding wins over Content-Length.
    assert_eq!(
        frame(&[("content-length", "3"), ("transfer-encoding", "gzip, chunked")]),
        (Framing::Chunked(Chunk::Size), true)
    );
    // Not chunked last: the body runs to the end of the connection.
    assert_eq!(frame(&[("transfer-encoding", "chunked, gzip")]), (Framing::Eof, false));
    assert_eq!(frame(&[]), (Framing::Eof, false));
    assert_eq!(frame(&[("content-length", "5"), ("connection", "keep-alive, Close")]), (Framing::Length(5), false));
    assert_eq!(frame(&[("content-length", "5"), ("content-length", "5")]), (Framing::Length(5), true));
    assert!(framing(ok, v11, &headers(&[("content-length", "5"), ("content-length", "6")])).is_err());
    assert!(framing(ok, v11, &headers(&[("content-length", "+5")])).is_err());
    assert_eq!(
        framing(ok, Version::HTTP_10, &headers(&[("content-length", "5")])).unwrap(),
        (Framing::Length(5), false)
    );
    assert_eq!(framing(StatusCode::NO_CONTENT, v11, &headers(&[])).unwrap(), (Framing::Done, true));
}

#[test]
fn requests_are_encoded_in_origin_form_with_their_length() {
    let request = http::Request::builder()
        .method("POST")
        .uri("http://upstream.test:8080/v1/chat/completions?api-version=1")
        .header("authorization", "Bearer sk-test")
        .header("content-length", "999")
        .body(Bytes::from_static(b"{\"a\":1}"))
        .unwrap();
    let encoded = encode_request(&request, &HeaderValue::from_static("upstream.test:8080"));
    assert_eq!(
        String::from_utf8(encoded).unwrap(),
        "POST /v1/chat/completions?api-version=1 HTTP/1.1\r\nhost: upstream.test:8080\r\n\
         authorization: Bearer sk-test\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
    );
    let get = http::Request::builder().uri("http://h/v1/models").body(Bytes::new()).unwrap();
    assert_eq!(
        String::from_utf8(encode_request(&get, &HeaderValue::from_static("h"))).unwrap(),
        "GET /v1/models HTTP/1.1\r\nhost: h\r\n\r\n"
    );
}
