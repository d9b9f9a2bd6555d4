//! A small W3C WebDriver client for the dashboard test: chromedriver driving Debian's headless
//! chromium, over plain HTTP/1.1 on loopback. It covers what the test needs (a session, go to
//! a page, find an element, its text, click, a screenshot); docs/TESTING.md says why this and
//! not a WebDriver crate. If chromium or chromedriver is missing it installs them with apt-get
//! (as root), as the project's CI must do on a new machine.

use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use serde_json::Value;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key of an element reference in WebDriver replies.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Install chromium and chromedriver with apt-get unless both are there (a few minutes on a
/// new machine: docs/TESTING.md). Only root can: anyone else gets an error that says what to do.
pub fn ensure_browser() -> Result<()> {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    let uid = Command::new("id").arg("-u").output().context("running id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "the dashboard test needs {CHROMIUM} and {CHROMEDRIVER}: run \
             `apt-get install -y chromium chromium-driver` as root (the test does it itself when run as root)"
        );
    }
    let apt = |args: &[&str]| -> Result<bool> {
        Ok(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("running apt-get")?
            .success())
    };
    let install = [
        "install",
        "-y",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ];
    // The package lists may be missing or old on a new machine: update once if needed.
    let installed = apt(&install)? || apt(&["update"])? && apt(&install)?;
    if !installed {
        bail!("apt-get install -y chromium chromium-driver failed (see its output above)");
    }
    Ok(())
}

/// A running chromedriver, killed on drop.
pub struct Driver {
    child: Child,
    addr: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Start chromedriver on `port` and wait (10 s at most) until it is ready.
    pub async fn start(port: u16) -> Result<Driver> {
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let driver = Driver {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(v) = driver.call("GET", "/status", None).await
                && v["value"]["ready"] == json!(true)
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not get ready in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One WebDriver command: its reply's JSON, or an error with WebDriver's message.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let exchange = async {
            let mut sock = tokio::net::TcpStream::connect(&self.addr).await?;
            let request = format!(
                "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                self.addr,
                body.len()
            );
            sock.write_all(request.as_bytes()).await?;
            read_reply(&mut sock).await
        };
        let (status, reply) = tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .with_context(|| format!("webdriver {method} {path} timed out"))??;
        let v: Value =
            serde_json::from_slice(&reply).with_context(|| format!("webdriver {method} {path}"))?;
        if status >= 400 {
            bail!("webdriver {method} {path}: {status} {}", v["value"]["message"]);
        }
        Ok(v)
    }

    /// A headless chromium session, `width`×`height` pixels.
    pub async fn session(&self, width: u32, height: u32) -> Result<Session<'_>> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         format!("--window-size={width},{height}")],
            },
        }}});
        let v = self.call("POST", "/session", Some(&caps)).await?;
        let id = v["value"]["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(Session { driver: self, id })
    }
}

/// Read one HTTP/1.1 reply: `(status, body)` by its content-length (or to the end).
async fn read_reply(sock: &mut tokio::net::TcpStream) -> Result<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    // On the heap: a 64 KiB array would sit in every future that awaits this one.
    let mut chunk = vec![0u8; 65536];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the reply's head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let mut body = buf.split_off(head_end);
    match length {
        Some(len) => {
            while body.len() < len {
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed inside the reply's body");
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            sock.read_to_end(&mut body).await?;
        }
    }
    Ok((status, body))
}

/// A browser session; closed by [`Session::close`].
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Session<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let path = format!("/session/{}{path}", self.id);
        self.driver.call(method, &path, body).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(&json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The first element matching the CSS selector, if any.
    pub async fn find(&self, css: &str) -> Result<Option<String>> {
        let find = json!({ "using": "css selector", "value": css });
        let v = self.call("POST", "/elements", Some(&find)).await?;
        Ok(v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT_KEY].as_str())
            .map(str::to_string))
    }

    pub async fn text(&self, element: &str) -> Result<String> {
        let v = self
            .call("GET", &format!("/element/{element}/text"), None)
            .await?;
        Ok(v["value"].as_str().unwrap_or_default().to_string())
    }

    pub async fn click(&self, element: &str) -> Result<()> {
        self.call("POST", &format!("/element/{element}/click"), Some(&json!({})))
            .await
            .map(drop)
    }

    /// Wait (up to `timeout`, polling) until the element matching `css` has text that
    /// `want` accepts; that text. Elements are looked up anew each time: the page redraws.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(e) = self.find(css).await? {
                // The element may be replaced between find and text: try again then.
                if let Ok(t) = self.text(&e).await {
                    if want(&t) {
                        return Ok(t);
                    }
                    last = Some(t);
                }
            }
            if Instant::now() > deadline {
                bail!("'{css}' did not show the expected text in {timeout:?} (last: {last:?})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Click the element matching `css` (found anew, retried for up to 10 s while the page
    /// redraws it).
    pub async fn click_css(&self, css: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tried = match self.find(css).await? {
                Some(e) => self.click(&e).await,
                None => Err(anyhow::anyhow!("no element '{css}'")),
            };
            match tried {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.call("GET", "/screenshot", None).await?;
        base64_decode(v["value"].as_str().context("no screenshot")?)
    }

    pub async fn close(self) -> Result<()> {
        self.call("DELETE", "", None).await.map(drop)
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {c}"),
        } as u32)
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for group in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in group.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let take = group.len().saturating_sub(1);
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Ok(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
    assert!(base64_decode("a*").is_err());
}
