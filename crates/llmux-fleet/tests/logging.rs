//! The fleet logs going down and coming up once each, and never the URL's password.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmux_fleet::{Fleet, FleetError, FleetOptions};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn transitions_are_logged_once_without_the_password() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread, so that the fleet's background tasks log through this subscriber too.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let options = FleetOptions { health_interval: Duration::from_millis(50), ..FleetOptions::default() };
        let down = Fleet::new("redis://fleet:hunter2@127.0.0.1:1", options.clone()).unwrap();
        for _ in 0..50 {
            assert!(matches!(down.claim("c", 10, 1, 0).await, Err(FleetError::Unavailable(_))));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(down);
        let text = captured.text();
        assert_eq!(text.matches("Redis unreachable").count(), 1, "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let url = llmux_testkit::services::redis_url();
        let up = Fleet::new(&url, options).unwrap();
        for _ in 0..20 {
            up.get_many(&["never-set".to_owned()]).await.unwrap();
        }
        assert!(up.is_up());
        assert_eq!(captured.text().matches("connected to Redis").count(), 1, "{}", captured.text());
    });
}
