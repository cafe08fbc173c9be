//! A small client for the admin API of a running gateway, for the subcommands that ask
//! one: blocking, plain HTTP/1.1, one second at most.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long connecting, sending and reading may each take.
const TIMEOUT: Duration = Duration::from_secs(1);

/// `GET path` from the gateway listening at `listen`, with the master key: the JSON body
/// of a `200` answer, else why there is none.
pub fn get(listen: &str, path: &str, master_key: &str) -> Result<serde_json::Value, String> {
    let address: SocketAddr = listen.parse().map_err(|_| "not an address".to_owned())?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|error| error.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {listen}\r\nauthorization: Bearer {master_key}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("no status").to_owned());
    }
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    serde_json::from_str(&body).map_err(|error| error.to_string())
}

/// The payload of a chunked body (small, complete).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_joined_up_to_the_last_one() {
        assert_eq!(dechunk("4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n"), "{\"a\":1}");
        assert_eq!(dechunk("a\r\nshort\r\n"), "", "a chunk cut short ends the body");
    }

    #[test]
    fn answers_other_than_200_are_reported_by_their_status_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n",
            ] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut byte = [0u8];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    request.push(byte[0]);
                }
                assert!(String::from_utf8_lossy(&request).contains("authorization: Bearer master\r\n"));
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        assert_eq!(get(&listen, "/admin/providers", "master"), Err("HTTP/1.1 401 Unauthorized".to_owned()));
        assert_eq!(get(&listen, "/admin/providers", "master"), Ok(serde_json::json!({"a": 1})));
        server.join().unwrap();
        assert_eq!(get("localhost:1", "/", "master"), Err("not an address".to_owned()));
    }
}
