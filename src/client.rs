//! The admin commands of the CLI: HTTP calls to a running server's admin API
//! and their human-readable output.

#![allow(clippy::print_stdout)] // printing results is what these commands are for

use std::io::Write;

use serde_json::{Value, json};

use crate::cli::{KeysCommand, OutputFormat, ServerArgs, SourcesCommand, SqlAnswer};

/// A failed admin command, with the server's error code and message when it sent them.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status} {code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot print the result: {0}")]
    Output(std::io::Error),
}

impl ClientError {
    /// The server's `{"error": {"code", "message"}}` body, or the raw text
    /// when something else (a proxy) answered.
    fn from_body(status: reqwest::StatusCode, text: String) -> Self {
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let field = |name: &str| {
            body.pointer(&format!("/error/{name}"))
                .and_then(Value::as_str)
                .map(ToString::to_string)
        };
        Self::Server {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| "error".to_string()),
            message: field("message").unwrap_or(text),
        }
    }
}

struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    fn new(args: &ServerArgs) -> Self {
        Self {
            base: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request (with the token, and `accept` when given); a
    /// response that is not a success becomes the server's error.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        accept: Option<&str>,
    ) -> Result<(String, reqwest::Response), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = response
                .text()
                .await
                .map_err(|source| ClientError::Unreachable { url, source })?;
            return Err(ClientError::from_body(status, text));
        }
        Ok((url, response))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let (url, response) = self.send(method, path, body, None).await?;
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        })
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Runs a `tributary keys …` command.
pub async fn keys(server: &ServerArgs, command: KeysCommand) -> Result<(), ClientError> {
    let client = Client::new(server);
    match command {
        KeysCommand::Create {
            name,
            role,
            user_id,
            expires_in_secs,
        } => {
            let body = json!({
                "name": name, "role": role, "user_id": user_id, "expires_in_secs": expires_in_secs
            });
            let out = client
                .call(reqwest::Method::POST, "/admin/keys", Some(body))
                .await?;
            print_new_key(&out);
        }
        KeysCommand::List { json } => {
            let out = client
                .call(reqwest::Method::GET, "/admin/keys", None)
                .await?;
            if json {
                println!("{}", pretty(&out));
            } else {
                for key in out["keys"].as_array().into_iter().flatten() {
                    let state = if key.get("revoked_at").is_some() {
                        "revoked"
                    } else if key.get("expires_at").is_some() {
                        "expires"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<14} {:<10} {:<16} {:<8} {}",
                        key["id"].as_str().unwrap_or(""),
                        key["prefix"].as_str().unwrap_or(""),
                        key["role"].as_str().unwrap_or(""),
                        state,
                        key["name"].as_str().unwrap_or("")
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            client
                .call(reqwest::Method::DELETE, &format!("/admin/keys/{id}"), None)
                .await?;
            println!("revoked `{id}`");
        }
        KeysCommand::Rotate { id, grace_secs } => {
            let out = client
                .call(
                    reqwest::Method::POST,
                    &format!("/admin/keys/{id}/rotate"),
                    Some(json!({ "grace_secs": grace_secs })),
                )
                .await?;
            print_new_key(&out);
            println!("`{id}` keeps working for {grace_secs} s");
        }
    }
    Ok(())
}

fn print_new_key(key: &Value) {
    println!(
        "key `{}` (role `{}`): {}\nstore it now: it is not shown again",
        key["id"].as_str().unwrap_or(""),
        key["role"].as_str().unwrap_or(""),
        key["key"].as_str().unwrap_or("")
    );
}

/// Runs a `tributary sources …` command.
pub async fn sources(server: &ServerArgs, command: SourcesCommand) -> Result<(), ClientError> {
    let client = Client::new(server);
    match command {
        SourcesCommand::Add {
            name,
            url,
            include,
            exclude,
            password_env,
        } => {
            let mut body = json!({ "name": name, "url": url, "schemas": { "include": include, "exclude": exclude } });
            if let Some(env) = password_env {
                body["connection"] = json!({ "password": { "env": env } });
            }
            let out = client
                .call(reqwest::Method::POST, "/admin/sources", Some(body))
                .await?;
            let tables = out
                .pointer("/source/tables")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let version = out
                .pointer("/ping/server_version")
                .and_then(Value::as_str)
                .unwrap_or("?");
            println!("registered `{name}`: {tables} tables and views ({version})");
        }
        SourcesCommand::List { json } => {
            let out = client
                .call(reqwest::Method::GET, "/admin/sources", None)
                .await?;
            if json {
                println!("{}", pretty(&out));
            } else {
                print!("{}", sources_table(&out));
            }
        }
        SourcesCommand::Test { name } => {
            let out = client
                .call(
                    reqwest::Method::POST,
                    &format!("/admin/sources/{name}/test"),
                    None,
                )
                .await?;
            print!("{}", ping_report(&name, &out));
        }
        SourcesCommand::Refresh { name, drift } => {
            let mode = if drift { "drift" } else { "full" };
            let out = client
                .call(
                    reqwest::Method::POST,
                    &format!("/admin/sources/{name}/refresh?mode={mode}"),
                    None,
                )
                .await?;
            println!("{}", pretty(&out));
        }
        SourcesCommand::Remove { name } => {
            client
                .call(
                    reqwest::Method::DELETE,
                    &format!("/admin/sources/{name}"),
                    None,
                )
                .await?;
            println!("removed `{name}`");
        }
    }
    Ok(())
}

/// Runs `tributary sql` on a server: the rows as a table, JSON or CSV, or the plan.
pub async fn sql(
    server: &ServerArgs,
    query: &str,
    answer: SqlAnswer,
    format: OutputFormat,
) -> Result<(), ClientError> {
    let client = Client::new(server);
    if format == OutputFormat::Csv && answer == SqlAnswer::Rows {
        let body = json!({ "sql": query });
        let (url, mut response) = client
            .send(
                reqwest::Method::POST,
                "/api/sql",
                Some(body),
                Some("text/csv"),
            )
            .await?;
        // Printed as it arrives: an export is never held here.
        let mut out = std::io::stdout().lock();
        while let Some(chunk) =
            response
                .chunk()
                .await
                .map_err(|source| ClientError::Unreachable {
                    url: url.clone(),
                    source,
                })?
        {
            if !print_bytes(&mut out, &chunk).map_err(ClientError::Output)? {
                return Ok(());
            }
        }
        return Ok(());
    }
    let out = client
        .call(
            reqwest::Method::POST,
            "/api/sql",
            Some({
                let (explain, analyze) = answer.request_flags();
                json!({ "sql": query, "explain": explain, "analyze": analyze })
            }),
        )
        .await?;
    print!("{}", sql_answer(&out, answer, format));
    Ok(())
}

/// Writes and flushes; `Ok(false)` when the reader has gone away (a closed
/// pipe is how `| head` says it has seen enough, not an error).
pub(crate) fn print_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<bool> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// A JSON answer of the SQL endpoint as `tributary sql` prints it: as the
/// endpoint's JSON with `--format json`; otherwise, with `explain`, the SQL
/// each source receives and then the plan; with `analyze`, each source
/// statement as sent with its rows and times, the query's rows and time,
/// and the plan with its metrics; else the rows as a table (CSV answers are
/// printed as they come).
pub fn sql_answer(answer: &Value, asked: SqlAnswer, format: OutputFormat) -> String {
    use std::fmt::Write;
    if format == OutputFormat::Json {
        return format!("{}\n", pretty(answer));
    }
    if asked == SqlAnswer::Rows {
        return rows_table(answer);
    }
    let seconds = |run: &Value, field: &str| {
        run.get(field)
            .and_then(Value::as_f64)
            .map_or_else(|| "-".to_string(), |s| format!("{s:.3} s"))
    };
    let mut out = String::new();
    for run in answer
        .get("sources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let source = run.get("source").and_then(Value::as_str).unwrap_or("?");
        let _ = write!(out, "-- {source}");
        if asked == SqlAnswer::Analyze {
            let _ = write!(
                out,
                ": {} rows; sent {}, first row {}, ended {}",
                run.get("rows").and_then(Value::as_u64).unwrap_or(0),
                seconds(run, "sent_at"),
                seconds(run, "first_row_at"),
                seconds(run, "ended_at"),
            );
            // A wait for the pool worth saying (a millisecond or more).
            let wait = run.get("connection_wait").and_then(Value::as_f64);
            if let Some(wait) = wait.filter(|wait| *wait >= 0.001) {
                let _ = write!(out, " (waited {wait:.3} s for a connection)");
            }
        }
        let sql = run.get("sql").and_then(Value::as_str);
        let _ = writeln!(out, "\n{}\n", sql.unwrap_or("(not sent)"));
    }
    if asked == SqlAnswer::Analyze {
        let _ = writeln!(
            out,
            "-- {} rows in {}",
            answer.get("rows").and_then(Value::as_u64).unwrap_or(0),
            seconds(answer, "seconds"),
        );
    }
    let _ = writeln!(
        out,
        "{}",
        answer.get("plan").and_then(Value::as_str).unwrap_or("")
    );
    out
}

/// A SQL endpoint answer as an aligned text table.
pub fn rows_table(answer: &Value) -> String {
    use std::fmt::Write;
    let names: Vec<String> = answer
        .get("columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let cells: Vec<Vec<String>> = answer
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|row| {
            row.as_array()
                .into_iter()
                .flatten()
                .map(|v| match v {
                    Value::Null => "NULL".to_string(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([n.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(&names));
    let _ = writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in &cells {
        let _ = writeln!(out, "{}", line(row));
    }
    let _ = writeln!(
        out,
        "({} rows{})",
        cells.len(),
        if answer.get("truncated") == Some(&Value::Bool(true)) {
            ", truncated"
        } else {
            ""
        }
    );
    out
}

/// Runs `tributary catalog`.
pub async fn catalog(
    server: &ServerArgs,
    source: Option<&str>,
    as_json: bool,
) -> Result<(), ClientError> {
    let client = Client::new(server);
    let path = source.map_or_else(
        || "/admin/catalog".to_string(),
        |s| format!("/admin/catalog?source={s}"),
    );
    let out = client.call(reqwest::Method::GET, &path, None).await?;
    if as_json {
        println!("{}", pretty(&out));
        return Ok(());
    }
    print!("{}", catalog_table(&out));
    Ok(())
}

/// `tributary sources list` as a text table: a line per source, with its
/// connections in use of the pool's most (`-`: the server does not say)
/// and the requests waiting for one.
pub fn sources_table(sources: &Value) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<20} {:<10} {:<12} {:>7} {:>9} {:>7}  VERSION\n",
        "NAME", "KIND", "STATUS", "TABLES", "IN USE", "WAITING"
    );
    for source in sources.as_array().into_iter().flatten() {
        let field = |p: &str| source.pointer(p).and_then(Value::as_str).unwrap_or("-");
        let count = |p: &str| source.pointer(p).and_then(Value::as_u64);
        let callers = source.pointer("/pool/callers").and_then(Value::as_array);
        let in_use = callers.map(|callers| {
            callers
                .iter()
                .filter_map(|c| c.get("in_use").and_then(Value::as_u64))
                .sum::<u64>()
        });
        let of_most = match (in_use, count("/pool/max_size")) {
            (Some(in_use), Some(max)) => format!("{in_use}/{max}"),
            _ => "-".to_string(),
        };
        let waiting = count("/pool/waiting").map_or("-".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<12} {:>7} {:>9} {:>7}  {}",
            field("/name"),
            field("/kind"),
            field("/status/state"),
            count("/tables").unwrap_or(0),
            of_most,
            waiting,
            field("/server_version"),
        );
    }
    out
}

/// What `tributary sources test` prints of a source's ping answer: its
/// version and round trip, then each piece of advice on a line of its own.
pub fn ping_report(name: &str, ping: &Value) -> String {
    let mut report = format!(
        "`{name}` answers: {} in {:.1} ms\n",
        ping.get("server_version")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        ping.get("latency_ms")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    );
    let advice = ping.get("advice").and_then(Value::as_array);
    for line in advice.into_iter().flatten().filter_map(Value::as_str) {
        report.push_str(&format!("advice: {line}\n"));
    }
    report
}

/// The catalog as a text table: one line per table or view.
pub fn catalog_table(catalog: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:<32} {:<6} {:>7} {:>10}",
        "SQL NAME", "API NAME", "KIND", "COLUMNS", "ROWS (EST)"
    );
    let collections = catalog
        .get("collections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for collection in collections {
        let source = collection
            .pointer("/table/source")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let schema = collection
            .pointer("/table/schema")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let table = collection
            .pointer("/table/table")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let model = catalog.pointer(&format!(
            "/sources/{}/schema/schemas/{}/tables/{}",
            escape_pointer(source),
            escape_pointer(schema),
            escape_pointer(table)
        ));
        let kind = model
            .and_then(|m| m.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let columns = model
            .and_then(|m| m.get("columns"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let rows = model
            .and_then(|m| m.get("row_estimate"))
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<40} {:<32} {:<6} {:>7} {:>10}",
            collection
                .get("sql_name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            collection
                .get("api_name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            if kind == "table" { "table" } else { "view" },
            columns,
            rows
        );
    }
    out
}

fn escape_pointer(part: &str) -> String {
    part.replace('~', "~0").replace('/', "~1")
}
