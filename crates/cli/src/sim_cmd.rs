//! `sfetl sim`: a simulated org on loopback, with a connected app and key to point sfetl or curl at.

use crate::exit::Exit;
use clap::Args;
use sfetl_sim::{AppKind, FaultRule, OrgSpec, Sim, SimConfig};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  sfetl sim --users 5000\n  sfetl sim --tls --fault 503@rate=0.1 --fault expire-sessions@nth=20\n  \
                  sfetl sim --no-state-country-picklists --hidden-field User.Department --external-client-app"
)]
pub struct SimArgs {
    /// Users in the generated org.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Generator seed: the same seed and user count give the same org.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve HTTPS with a generated certificate (written into --dir).
    #[arg(long)]
    tls: bool,
    /// Where the connected app's key, certificate and a pipeline file are written.
    #[arg(long, default_value = "sim")]
    dir: PathBuf,
    /// Daily API request quota (with --shape, the shape's).
    #[arg(long, default_value_t = 100_000)]
    daily_api_max: u64,
    /// API requests already spent today (to start with the quota nearly used up).
    #[arg(long, default_value_t = 0)]
    api_used: u64,
    /// Added to every request, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Added per record served, in microseconds.
    #[arg(long)]
    latency_per_record_us: Option<u64>,
    /// Idle minutes before a session expires.
    #[arg(long, default_value_t = 120)]
    session_timeout_min: u64,
    /// Largest page served, whatever the client asks.
    #[arg(long)]
    max_page_size: Option<usize>,
    /// Faults as KIND@TRIGGER: 503, 500, query-timeout, reset, truncate, stall, slow,
    /// expire-sessions, invalidate-locators, concurrent-limit; triggers nth=N, every=N, rate=R.
    #[arg(long)]
    fault: Vec<FaultRule>,
    /// An org without State and Country/Territory Picklists: no `User.CountryCode`.
    #[arg(long)]
    no_state_country_picklists: bool,
    /// A field hidden from the integration user by field-level security, as Object.Field
    /// (repeatable), e.g. User.Department.
    #[arg(long)]
    hidden_field: Vec<String>,
    /// Set up an External Client App (audience: the org's My Domain URL) instead of a connected app.
    #[arg(long)]
    external_client_app: bool,
    /// The org refuses token requests at its login host (GovCloud, or blocked by My Domain settings).
    #[arg(long)]
    login_hosts_blocked: bool,
    /// The newest API version the org serves, e.g. 64.0.
    #[arg(long)]
    max_api_version: Option<String>,
    /// Serve an org shaped like the one `sfetl check --capture` described (its fields, objects,
    /// versions, limit and licenses; --users and the field options then come from the shape).
    #[arg(long)]
    shape: Option<PathBuf>,
    /// What one SIGUSR1 does to the org, as percentages of its users: CHANGED,LOGGED_IN (edited,
    /// so that `SystemModstamp` moves; logged in, which moves only `LastLoginDate`). A night in a
    /// real org, for incremental benchmarks: `kill -USR1 <pid>`.
    #[arg(long, default_value = "1,5", value_name = "CHANGED,LOGGED_IN")]
    churn: String,
}

pub async fn run(args: SimArgs) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    let mut config = match &args.shape {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--shape {}: cannot read it: {e}", path.display()))?;
            let shape: sfetl_extract::shape::OrgShape = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("--shape {}: not an org shape written by `sfetl check --capture`: {e}", path.display())
            })?;
            SimConfig::from_shape(&shape, args.seed)
        }
        None => SimConfig::new(OrgSpec::new(args.seed, args.users)),
    };
    config.port = args.port;
    if args.shape.is_none() {
        config.daily_api_max = args.daily_api_max;
    }
    config.max_page_size = args.max_page_size;
    config.api_used_at_start = args.api_used;
    config.latency_per_request = args.latency_ms.map(Duration::from_millis);
    config.latency_per_record = args.latency_per_record_us.map(Duration::from_micros);
    config.session_timeout = Duration::from_secs(args.session_timeout_min * 60);
    config.tls_dir = args.tls.then(|| dir.clone());
    config.state_country_picklists = !args.no_state_country_picklists;
    config.hidden_fields.extend(args.hidden_field);
    config.login_hosts_blocked = args.login_hosts_blocked;
    if args.max_api_version.is_some() {
        config.max_api_version = args.max_api_version;
    }
    let sim = Sim::start(config).await?;
    for fault in args.fault {
        sim.add_fault(fault);
    }
    let kind = if args.external_client_app { AppKind::ExternalClientApp } else { AppKind::ConnectedApp };
    let app = sim.create_app(kind, "System Administrator")?;
    // The org's URL is its My Domain; the login host is the simulator's other name.
    let my_domain = sim.my_domain_url();
    let key_path = dir.join("sim.key");
    write_private(&key_path, &app.key.private_key_pem)?;
    std::fs::write(dir.join("sim.crt"), &app.key.certificate_pem)?;
    let ca_line = sim.ca_file().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
    let pipeline = format!(
        "output = \"data\"\n\n[[orgs]]\nname = \"sim\"\ncompany_names = [\"Acme Corp\"]\nurl = \"{my_domain}\"\nlogin_url = \"{url}\"\n\
         client_id = \"{key}\"\nusername = \"{user}\"\nprivate_key_file = \"sim.key\"\n{ca_line}",
        url = sim.url(),
        key = app.consumer_key,
        user = sim.integration_username(),
    );
    std::fs::write(dir.join("pipeline.toml"), pipeline)?;
    println!("simulated org listening on {}", sim.url());
    println!("  URL (My Domain) : {my_domain}");
    println!("  login URL       : {}", sim.url());
    println!("  client_id       : {}", app.consumer_key);
    println!("  username        : {}", sim.integration_username());
    println!("  private key     : {}", key_path.display());
    println!("  certificate     : {}", dir.join("sim.crt").display());
    if let Some(ca) = sim.ca_file() {
        println!("  TLS CA          : {}", ca.display());
    }
    println!("  pipeline        : {} (sfetl extract {0})", dir.join("pipeline.toml").display());
    println!("Ctrl-C stops it.");
    let (changed, logged_in) = args
        .churn
        .split_once(',')
        .and_then(|(c, l)| Some((c.trim().parse::<f64>().ok()?, l.trim().parse::<f64>().ok()?)))
        .filter(|(c, l)| (0.0..=100.0).contains(c) && (0.0..=100.0).contains(l))
        .ok_or_else(|| anyhow::anyhow!("--churn {}: give two percentages, like 1,5", args.churn))?;
    let mut nights = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            stop = tokio::signal::ctrl_c() => {
                stop?;
                return Ok(Exit::Success);
            }
            _ = nights.recv() => {
                let (edited, logins) = churn(&sim, changed, logged_in);
                println!("churned: {edited} users changed, {logins} logged in");
            }
        }
    }
}

/// Edits `changed` % of the users (a new title, `SystemModstamp` now) and logs in `logged_in` %
/// others (`LastLoginDate` now), spread over the org.
fn churn(sim: &Sim, changed: f64, logged_in: f64) -> (usize, usize) {
    use sfetl_sim::value::Value;
    let now = chrono::Utc::now().timestamp_millis();
    let every = |share: f64| if share > 0.0 { (100.0 / share).round().max(1.0) as usize } else { usize::MAX };
    let mut edited = 0;
    sim.update_org(|data| {
        let users = data.table_mut("User");
        for i in (0..users.rows.len()).step_by(every(changed)) {
            users.set(i, "Title", Value::str(format!("Changed at {now}")));
            users.set(i, "LastModifiedDate", Value::DateTime(now));
            users.set(i, "SystemModstamp", Value::DateTime(now));
            edited += 1;
        }
    });
    let ids: Vec<String> = {
        let org = sim.org();
        let users = org.table("User");
        (1..users.rows.len())
            .step_by(every(logged_in))
            .filter_map(|i| users.get(i, "Id").as_str().map(String::from))
            .collect()
    };
    // The snapshot is let go first: held, the logins would copy the users once more.
    sim.log_in(&ids, now);
    (edited, ids.len())
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(content.as_bytes())
}
