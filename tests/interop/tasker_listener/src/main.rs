//! `tasker_listener`: drive the real tasker-pgmq 0.1.3 crate so that Python tests
//! can check wire compatibility against it instead of against our reading of it.
//!
//! Three modes, all printing JSON on stdout:
//!
//! * listen (default, needs `--dsn`): the crate's own `PgmqNotifyListener`
//!   LISTENs on the channels the crate computes, parses each notification
//!   with the crate's own code, and we print one JSON line per notification.
//! * `--print-channels`: the channel names and namespaces the crate computes.
//! * `--parse-stdin`: run the exact parse call the listener uses
//!   (`serde_json::from_str::<PgmqNotifyEvent>`) over a JSON array of payload
//!   strings read from stdin, without a database.
//!
//! Nothing here re-implements crate logic: every name, namespace and parse
//! result comes from a tasker-pgmq function.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use tasker_pgmq::listener::PgmqEventHandler;
use tasker_pgmq::{
    PgmqNotifyClient, PgmqNotifyConfig, PgmqNotifyError, PgmqNotifyEvent, PgmqNotifyListener,
};
use tokio::sync::mpsc;

/// Bounded buffer handed to the crate's listener (its README suggests 1000).
const LISTENER_BUFFER: usize = 1000;

#[derive(Parser, Debug)]
#[command(
    name = "tasker_listener",
    about = "Run tasker-pgmq 0.1.3's own listener, channel naming and event parser; print JSON"
)]
struct Args {
    /// PostgreSQL connection string (listen mode; optional for --print-channels)
    #[arg(long)]
    dsn: Option<String>,
    /// Channel prefix (PgmqNotifyConfig::with_channels_prefix)
    #[arg(long)]
    prefix: Option<String>,
    /// Queue naming pattern (PgmqNotifyConfig::with_queue_naming_pattern); crate default if omitted
    #[arg(long)]
    pattern: Option<String>,
    /// Listen on the message-ready channel of this namespace (repeatable)
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// Listen on the global message-ready channel
    #[arg(long)]
    global: bool,
    /// Listen on the queue-created channel
    #[arg(long)]
    queue_created: bool,
    /// Exit 0 after this many notifications (events plus parse errors)
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Exit 0 after this many seconds after `ready`, whatever was received
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    timeout_secs: f64,
    /// Print the crate's channel names for the config (and --queue/--namespace) and exit
    #[arg(long, conflicts_with = "parse_stdin")]
    print_channels: bool,
    /// With --print-channels: a queue name to extract a namespace and channel for (repeatable)
    #[arg(long = "queue", value_name = "Q", requires = "print_channels")]
    queues: Vec<String>,
    /// Parse a JSON array of payload strings from stdin with the crate's parser and exit
    #[arg(long)]
    parse_stdin: bool,
}

/// One line of JSON on stdout, flushed, so a reader sees it at once.
fn emit(value: &Value) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// A fatal error: machine-readable on stdout, human-readable on stderr, exit 1.
fn fatal(stage: &str, error: impl std::fmt::Display) -> ExitCode {
    let message = error.to_string();
    eprintln!("tasker_listener: {stage}: {message}");
    emit(&json!({ "fatal": message, "stage": stage }));
    ExitCode::from(1)
}

fn variant_name(event: &PgmqNotifyEvent) -> &'static str {
    // Exhaustive on purpose: a new variant in the crate must fail the build here.
    match event {
        PgmqNotifyEvent::QueueCreated(_) => "QueueCreated",
        PgmqNotifyEvent::MessageReady(_) => "MessageReady",
        PgmqNotifyEvent::MessageWithPayload(_) => "MessageWithPayload",
        PgmqNotifyEvent::BatchReady(_) => "BatchReady",
    }
}

/// The event as the crate itself serializes it, with its variant name.
fn event_json(event: &PgmqNotifyEvent) -> Value {
    let serialized = serde_json::to_value(event)
        .unwrap_or_else(|e| json!({ "serialize_error": e.to_string() }));
    json!({ "variant": variant_name(event), "event": serialized })
}

fn result_json<T: Into<Value>>(result: tasker_pgmq::Result<T>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value.into() }),
        Err(error) => json!({ "error": error.to_string() }),
    }
}

fn build_config(args: &Args) -> PgmqNotifyConfig {
    let mut config = PgmqNotifyConfig::new();
    if let Some(pattern) = &args.pattern {
        config = config.with_queue_naming_pattern(pattern.clone());
    }
    if let Some(prefix) = &args.prefix {
        config = config.with_channels_prefix(prefix.clone());
    }
    config
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.parse_stdin {
        return parse_stdin();
    }
    if args.print_channels {
        return print_channels(&args).await;
    }
    listen(&args).await
}

/// `--parse-stdin`: stdin is a JSON array of payload strings; stdout is a JSON
/// array with one result per payload, in order.
fn parse_stdin() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return fatal("read-stdin", e);
    }
    let payloads: Vec<String> = match serde_json::from_str(&input) {
        Ok(p) => p,
        Err(e) => return fatal("read-stdin", format!("expected a JSON array of strings: {e}")),
    };
    let results: Vec<Value> = payloads
        .iter()
        // The same call the crate's listener makes on every notification payload.
        .map(|payload| match serde_json::from_str::<PgmqNotifyEvent>(payload) {
            Ok(event) => {
                let mut line = event_json(&event);
                line["ok"] = json!(true);
                line
            }
            Err(e) => json!({ "ok": false, "error": PgmqNotifyError::Serialization(e).to_string() }),
        })
        .collect();
    emit(&Value::Array(results));
    ExitCode::SUCCESS
}

/// `--print-channels`: what the crate computes for this config.
async fn print_channels(args: &Args) -> ExitCode {
    let config = build_config(args);

    // PgmqClient::extract_namespace (with its `_queue` suffix fallback) differs
    // from PgmqNotifyConfig::extract_namespace; a lazy pool never connects.
    let dsn = args
        .dsn
        .clone()
        .unwrap_or_else(|| "postgres://unused@localhost/unused".to_string());
    let pool = match PgPoolOptions::new().max_connections(1).connect_lazy(&dsn) {
        Ok(pool) => pool,
        Err(e) => return fatal("pool", e),
    };
    let client = PgmqNotifyClient::new_with_pool_and_config(pool, config.clone()).await;

    let queues: Vec<Value> = args
        .queues
        .iter()
        .map(|queue| {
            let namespace = config.extract_namespace(queue);
            let channel = match &namespace {
                Ok(ns) => result_json(config.message_ready_channel(ns)),
                Err(e) => json!({ "error": format!("no namespace: {e}") }),
            };
            json!({
                "queue": queue,
                "namespace": result_json(namespace),
                "client_namespace": client.extract_namespace(queue),
                "channel": channel,
            })
        })
        .collect();
    let namespaces: Vec<Value> = args
        .namespaces
        .iter()
        .map(|ns| json!({ "namespace": ns, "channel": result_json(config.message_ready_channel(ns)) }))
        .collect();

    emit(&json!({
        "config": serde_json::to_value(&config).unwrap_or(Value::Null),
        "validate": result_json(config.validate().map(|()| Value::Null)),
        "queue_created": result_json(config.queue_created_channel()),
        "global": result_json(config.global_message_ready_channel()),
        "queues": queues,
        "namespaces": namespaces,
    }));
    ExitCode::SUCCESS
}

enum Received {
    Event(PgmqNotifyEvent),
    ParseError { channel: String, payload: String, error: String },
    ConnectionError(String),
}

/// Forwards what the crate's listener loop hands its handler to our main task.
struct Forwarder {
    tx: mpsc::UnboundedSender<Received>,
}

#[async_trait]
impl PgmqEventHandler for Forwarder {
    async fn handle_event(&self, event: PgmqNotifyEvent) -> tasker_pgmq::Result<()> {
        let _ = self.tx.send(Received::Event(event));
        Ok(())
    }

    async fn handle_parse_error(&self, channel: &str, payload: &str, error: PgmqNotifyError) {
        let _ = self.tx.send(Received::ParseError {
            channel: channel.to_string(),
            payload: payload.to_string(),
            error: error.to_string(),
        });
    }

    async fn handle_connection_error(&self, error: PgmqNotifyError) {
        let _ = self.tx.send(Received::ConnectionError(error.to_string()));
    }
}

async fn listen(args: &Args) -> ExitCode {
    let Some(dsn) = &args.dsn else {
        eprintln!("tasker_listener: --dsn is required to listen (or use --print-channels / --parse-stdin)");
        return ExitCode::from(2);
    };
    if !(args.queue_created || args.global || !args.namespaces.is_empty()) {
        eprintln!("tasker_listener: nothing to listen on: give --queue-created, --global or --namespace");
        return ExitCode::from(2);
    }
    if !(args.timeout_secs.is_finite() && args.timeout_secs > 0.0) {
        eprintln!("tasker_listener: --timeout-secs must be a positive number");
        return ExitCode::from(2);
    }

    let config = build_config(args);
    let pool = match PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(dsn)
        .await
    {
        Ok(pool) => pool,
        Err(e) => return fatal("connect", e),
    };
    // Validates the config (pattern compiles, prefix 1-20 chars, ...).
    let mut listener = match PgmqNotifyListener::new(pool, config, LISTENER_BUFFER).await {
        Ok(listener) => listener,
        Err(e) => return fatal("config", e),
    };
    if let Err(e) = listener.connect().await {
        return fatal("connect", e);
    }
    if args.queue_created {
        if let Err(e) = listener.listen_queue_created().await {
            return fatal("listen", e);
        }
    }
    if args.global {
        if let Err(e) = listener.listen_message_ready_global().await {
            return fatal("listen", e);
        }
    }
    for namespace in &args.namespaces {
        if let Err(e) = listener.listen_message_ready_for_namespace(namespace).await {
            return fatal("listen", e);
        }
    }
    let mut channels = listener.listening_channels();
    channels.sort();

    let (tx, mut rx) = mpsc::unbounded_channel();
    // The crate's own loop: it reads notifications and parses the payloads.
    if let Err(e) = listener.start_listening_with_handler(Forwarder { tx }).await {
        return fatal("listen", e);
    }
    emit(&json!({ "ready": true, "channels": channels }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout_secs);
    let mut received: u64 = 0;
    let reason = loop {
        if args.max_events.is_some_and(|max| received >= max) {
            break "max-events";
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => break "timeout",
            Ok(None) => break "stream-ended",
            Ok(Some(Received::Event(event))) => {
                emit(&event_json(&event));
                received += 1;
            }
            Ok(Some(Received::ParseError { channel, payload, error })) => {
                emit(&json!({ "error": error, "channel": channel, "payload": payload }));
                received += 1;
            }
            Ok(Some(Received::ConnectionError(error))) => {
                // The crate's loop ends after this; the channel closes next.
                emit(&json!({ "error": error, "kind": "connection" }));
            }
        }
    };
    emit(&json!({ "done": true, "received": received, "reason": reason }));
    if reason == "stream-ended" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
