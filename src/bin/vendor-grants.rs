//! The vendor-grants CLI: a thin clap layer over the library. `plan` shows what a grant would
//! write, with no AWS call; `audit` tells which vendor can reach which data and whether it is
//! still as it was set up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vendor_grants::catalog::Catalog;
use vendor_grants::grant::record::redact_trust;
use vendor_grants::grant::{self, GrantProperties, Plan, PlanInput, RawProperties};
use vendor_grants::policy::arn::Arn;
use vendor_grants::policy::lint::partition_of_region;
use vendor_grants::policy::{GrantId, PolicyDocument, Statement, diff::statement_diff, is_owned};

#[derive(Parser)]
#[command(
    name = "vendor-grants",
    version,
    about = "Grant data vendors access to S3 buckets and KMS keys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the policies and role a grant would write, without calling AWS.
    Plan(Box<PlanArgs>),
    /// Every grant in the account and region, judged against the registry: ok, drifted,
    /// missing, orphaned, incomplete, tampered (or unregistered without a registry). Exit 0
    /// when all are ok, 1 when any is not, 2 on error. Read-only unless --fix or
    /// --remove-orphans --yes.
    Audit(AuditArgs),
}

#[derive(Args)]
struct AuditArgs {
    /// Print JSON ({"Grants": [...], "Summary": {...}}) instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this bucket (repeat for several); default: every bucket of the account in the region.
    #[arg(long = "bucket")]
    buckets: Vec<String>,
    /// The lock table holding the grant registry.
    #[arg(long, env = "VENDOR_GRANTS_LOCK_TABLE")]
    lock_table: Option<String>,
    /// The KMS HMAC key the function signs registry records with (the deploy stack's
    /// RegistryKeyArn output): only records whose MAC verifies are repaired.
    #[arg(long, env = "VENDOR_GRANTS_REGISTRY_KEY")]
    registry_key: Option<String>,
    /// Rebuild drifted and missing grants from their recorded properties, through Create's
    /// checks and the allow-lists (VENDOR_GRANTS_ALLOWED_VENDORS / _PRINCIPALS); only grants
    /// whose record verifies and whose rebuild is what the record says was written.
    #[arg(long)]
    fix: bool,
    /// Print what removing orphaned grants would remove (statements, inline policies, roles
    /// vendor-grants created that no grant uses, records); with --yes, remove it.
    #[arg(long)]
    remove_orphans: bool,
    /// With --remove-orphans: remove, rather than only print.
    #[arg(long, requires = "remove_orphans")]
    yes: bool,
    /// Print, from the live grants, what mutes exactly the expected vendor access elsewhere.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// Reads made at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Emit {
    /// Access Analyzer archive rules (CreateArchiveRule's ruleName and filter).
    AccessAnalyzerArchiveRules,
    /// The parameters of AWS Config's s3-bucket-policy-grantee-check rule.
    ConfigGranteeCheck,
}

#[derive(Args)]
struct PlanArgs {
    /// Vendor profile id: telus, scale-ai, vcc, alphasense or custom.
    #[arg(long)]
    vendor: String,
    /// The bucket the vendor gets access to.
    #[arg(long)]
    bucket: String,
    /// The key's ARN (the function also resolves key ids and aliases; the CLI cannot).
    #[arg(long)]
    kms_key_arn: Option<String>,
    /// bucket-policy or role (default: the vendor's).
    #[arg(long)]
    mode: Option<String>,
    /// read, write, read-write or full (default: what the vendor's guide asks for).
    #[arg(long)]
    access: Option<String>,
    /// Limit objects and listing to this key prefix.
    #[arg(long)]
    prefix: Option<String>,
    /// The vendor's account id or IAM ARN; repeat or separate with commas for several.
    #[arg(long = "vendor-principal", value_delimiter = ',')]
    vendor_principal: Vec<String>,
    /// Role mode: the external id the vendor gave you.
    #[arg(long)]
    external_id: Option<String>,
    /// Role mode: the role's name.
    #[arg(long)]
    role_name: Option<String>,
    /// The current bucket policy (JSON file); none if omitted.
    #[arg(long)]
    bucket_policy: Option<PathBuf>,
    /// The current key policy (JSON file); the default key policy of the key's account if omitted.
    #[arg(long)]
    key_policy: Option<PathBuf>,
    /// Print a readable diff against the current policies instead of JSON.
    #[arg(long)]
    diff: bool,
    /// The region of the bucket (decides the partition of ARNs).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The stack the grant belongs to (part of the grant id).
    #[arg(long, default_value = "vendor-grants-cli")]
    stack_id: String,
    /// The grant's logical resource id (part of the grant id).
    #[arg(long, default_value = "VendorGrant")]
    logical_id: String,
    /// Preview an in-place Update of this live grant (its GrantId, 16 hex digits) instead of a
    /// Create: its statements in the policies given are replaced, not refused.
    #[arg(long, conflicts_with = "physical_resource_id")]
    grant_id: Option<String>,
    /// Preview an in-place Update of the grant this PhysicalResourceId
    /// (vendor-grants:GRANT:BUCKET) carries.
    #[arg(long)]
    physical_resource_id: Option<String>,
    /// Print the ExternalId in the trust policy; it is shown as <ExternalId> otherwise.
    #[arg(long)]
    show_external_id: bool,
}

fn read_policy(path: &PathBuf, what: &str) -> Result<PolicyDocument, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
    PolicyDocument::parse(&text, what).map_err(|e| e.to_string())
}

/// The policy a new key gets: the account may administer it through IAM policies.
fn default_key_policy(key_arn: &str) -> Result<PolicyDocument, String> {
    let (partition, account) = grant::plan::key_arn_parts(key_arn).ok_or_else(|| {
        format!(
            "--kms-key-arn {key_arn:?}: plan needs the key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); \
             only the function resolves key ids and aliases"
        )
    })?;
    let text = format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:{partition}:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    PolicyDocument::parse(&text, "key policy").map_err(|e| e.to_string())
}

/// Checks the flags as the function checks ResourceProperties, reads the current policies and
/// prints the plan: as JSON, or with `--diff` as a readable diff. A Create by default; with
/// `--grant-id` or `--physical-resource-id`, an in-place Update of that live grant.
fn run_plan(args: PlanArgs) -> Result<String, String> {
    let catalog = Catalog::builtin().map_err(|e| e.to_string())?;
    check_region(&args.region)?;
    if let Some(arn) = &args.kms_key_arn {
        check_key_region(arn, &args.region)?;
    }
    let props =
        GrantProperties::from_raw(raw_properties(&args), catalog).map_err(|e| e.to_string())?;
    let (bucket_policy, key_policy) = current_policies(&args)?;
    let updating = updated_grant(&args)?;
    let grant_id = updating
        .clone()
        .unwrap_or_else(|| grant::derive_grant_id(&args.stack_id, &args.logical_id, &props));
    // An Update replaces what the grant wrote: its statements in the policies given (the CLI
    // reads no registry, so the statements under its Sids in the shape vendor-grants writes).
    let previous: Vec<Statement> = match &updating {
        Some(g) => [&bucket_policy, &key_policy]
            .into_iter()
            .flatten()
            .flat_map(|d| &d.statements)
            .filter(|s| is_owned(s, g))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let input = PlanInput {
        props: &props,
        grant_id: &grant_id,
        partition: partition_of_region(&args.region),
        account_id: None,
        kms_key_arn: args.kms_key_arn.as_deref(),
        bucket_policy: bucket_policy.as_ref(),
        key_policy: key_policy.as_ref(),
        new_grant: updating.is_none(),
    };
    let plan = grant::plan::plan_over(catalog, input, &previous)
        .map_err(|e| explain_conflict(e, &grant_id, [&bucket_policy, &key_policy]))?;
    if args.kms_key_arn.is_some() && args.key_policy.is_none() {
        eprintln!(
            "note: no --key-policy given: the plan assumes the key has the default key policy \
             (the account's IAM policies may grant its use); pass --key-policy FILE for the real one"
        );
    }
    let external_id = props
        .external_id
        .as_deref()
        .filter(|_| !args.show_external_id);
    if !args.diff {
        // The JSON on stdout stays the plan; what the Prefix also matches goes beside it.
        if let Some(note) = props.prefix_note() {
            eprintln!("note: {note}");
        }
        let mut value = serde_json::to_value(&plan).map_err(|e| e.to_string())?;
        if let (Some(id), Some(trust)) = (external_id, value.pointer_mut("/Role/TrustPolicy")) {
            *trust = redact_trust(trust, Some(id));
        }
        return serde_json::to_string_pretty(&value).map_err(|e| e.to_string());
    }
    let current = Current {
        bucket_policy: bucket_policy.as_ref(),
        key_policy: key_policy.as_ref(),
        key_policy_assumed: args.key_policy.is_none(),
        external_id,
        updating: updating.is_some(),
    };
    Ok(render_diff(&args, &grant_id, &props, &plan, current))
}

/// The grant an in-place Update preview acts on: `--grant-id`, or the id inside
/// `--physical-resource-id` (whose bucket must be `--bucket`: another bucket is a replacement,
/// which is a Create of a new grant).
fn updated_grant(args: &PlanArgs) -> Result<Option<GrantId>, String> {
    if let Some(id) = &args.grant_id {
        return GrantId::parse(id).map(Some).ok_or_else(|| {
            format!("--grant-id {id:?} is not a grant id (16 lowercase hex digits, as in the GrantId attribute)")
        });
    }
    let Some(physical) = &args.physical_resource_id else {
        return Ok(None);
    };
    let id = grant::grant_id_from_physical(physical).ok_or_else(|| {
        format!(
            "--physical-resource-id {physical:?} is not one of vendor-grants' \
             (vendor-grants:GRANT:BUCKET)"
        )
    })?;
    match grant::id::bucket_from_physical(physical) {
        Some(bucket) if bucket != args.bucket => Err(format!(
            "--physical-resource-id names bucket {bucket}, but --bucket is {}: a grant on another \
             bucket is a replacement (a new grant, then the old one's Delete); plan it without \
             --physical-resource-id",
            args.bucket
        )),
        _ => Ok(Some(id)),
    }
}

/// A region's name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`. The CLI calls no
/// AWS, so a name of that form that AWS does not have is not caught here.
fn check_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--region {region:?} is not a region name (such as us-east-1, eu-west-2, us-gov-west-1)"
        ))
    }
}

/// A bucket's KMS key is in the bucket's region (KMS keys are regional, and the function changes
/// only keys of its own region).
fn check_key_region(key_arn: &str, region: &str) -> Result<(), String> {
    match Arn::parse(key_arn) {
        Some(a) if a.service == "kms" && a.region != region => Err(format!(
            "--kms-key-arn names a key in {}, but --region is {region}: the grant's key must be \
             in the bucket's region; give a key of {region} (or the bucket's real region)",
            a.region
        )),
        _ => Ok(()),
    }
}

/// A Create that meets one of its Sids already in a policy: a foreign statement under that Sid
/// (refused, as the function refuses it), or, when that statement has the shape vendor-grants
/// writes, most likely this live grant with other content, which is an Update to preview.
fn explain_conflict(
    e: grant::Error,
    grant_id: &GrantId,
    policies: [&Option<PolicyDocument>; 2],
) -> String {
    use vendor_grants::policy::Error as PolicyError;
    if let grant::Error::Policy(PolicyError::SidConflict { what, sid }) = &e {
        let ours = policies
            .into_iter()
            .flatten()
            .flat_map(|d| &d.statements)
            .any(|s| s.sid.as_deref() == Some(sid.as_str()) && is_owned(s, grant_id));
        if ours {
            return format!(
                "the {what} already has statement {sid} in the shape vendor-grants writes, with \
                 other content: grant {grant_id} is live, and this would change it. Preview an \
                 in-place Update with --grant-id {grant_id} (never rename the grant's own Sid: \
                 the vendor's access would stay in a statement nobody owns)"
            );
        }
    }
    e.to_string()
}

/// The flags as the ResourceProperties CloudFormation would send.
fn raw_properties(args: &PlanArgs) -> RawProperties {
    RawProperties {
        vendor: Some(args.vendor.clone()),
        bucket_name: Some(args.bucket.clone()),
        kms_key: args.kms_key_arn.clone(),
        mode: args.mode.clone(),
        access: args.access.clone(),
        prefix: args.prefix.clone(),
        vendor_principals: (!args.vendor_principal.is_empty())
            .then(|| args.vendor_principal.clone()),
        external_id: args.external_id.clone(),
        role_name: args.role_name.clone(),
    }
}

/// The current bucket and key policies: from the files given, else none for the bucket and the
/// default key policy for the key.
fn current_policies(
    args: &PlanArgs,
) -> Result<(Option<PolicyDocument>, Option<PolicyDocument>), String> {
    let bucket_policy = args
        .bucket_policy
        .as_ref()
        .map(|p| read_policy(p, "bucket policy"))
        .transpose()?;
    let key_policy = match (&args.key_policy, &args.kms_key_arn) {
        (Some(path), _) => Some(read_policy(path, "key policy")?),
        (None, Some(arn)) => Some(default_key_policy(arn)?),
        (None, None) => None,
    };
    if key_policy.is_some() && args.kms_key_arn.is_none() {
        return Err("--key-policy needs --kms-key-arn".to_string());
    }
    if let Some(arn) = &args.kms_key_arn {
        default_key_policy(arn)?;
    }
    Ok((bucket_policy, key_policy))
}

/// The policies the plan was computed against, and how to show them.
struct Current<'a> {
    bucket_policy: Option<&'a PolicyDocument>,
    key_policy: Option<&'a PolicyDocument>,
    /// No --key-policy: the key policy is the default one, assumed.
    key_policy_assumed: bool,
    /// The ExternalId to show as `<ExternalId>`.
    external_id: Option<&'a str>,
    /// An in-place Update of a live grant, not a Create.
    updating: bool,
}

/// The plan as a readable diff of each document against its current version.
fn render_diff(
    args: &PlanArgs,
    grant_id: &GrantId,
    props: &GrantProperties,
    plan: &Plan,
    current: Current<'_>,
) -> String {
    let kind = if current.updating {
        "in-place Update of"
    } else {
        "Create of"
    };
    let mut out = format!("{kind} grant {grant_id}\n");
    if let Some(note) = props.prefix_note() {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&format!("\nbucket policy of {}:\n", props.bucket_name));
    if plan.role.is_some() {
        out.push_str("  (role mode: the bucket policy is left alone)\n");
    } else {
        out.push_str(&statement_diff(
            current.bucket_policy,
            plan.bucket_policy.as_ref(),
        ));
    }
    if let Some(arn) = &args.kms_key_arn {
        let assumed = if current.key_policy_assumed {
            " (assumed: the default key policy; pass --key-policy FILE for the real one)"
        } else {
            ""
        };
        out.push_str(&format!("\nkey policy of {arn}{assumed}:\n"));
        out.push_str(&statement_diff(
            current.key_policy,
            plan.key_policy.as_ref(),
        ));
    }
    if let Some(role) = &plan.role {
        out.push_str(&format!(
            "\nrole {} ({}) trust policy:\n",
            role.role_name, role.role_arn
        ));
        let trust = match current.external_id {
            Some(id) => redact_trust(&role.trust_policy.to_value(), Some(id)),
            None => role.trust_policy.to_value(),
        };
        let trust = PolicyDocument::from_value(trust, "trust policy")
            .unwrap_or_else(|_| role.trust_policy.clone());
        out.push_str(&statement_diff(None, Some(&trust)));
        out.push_str(&format!(
            "\nrole {} inline policy {}:\n",
            role.role_name, role.permissions_policy_name
        ));
        out.push_str(&statement_diff(None, Some(&role.permissions_policy)));
    }
    out.push_str(&format!(
        "\nstatement ids: {}\n",
        plan.statement_ids.join(", ")
    ));
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => run_plan(*args),
        Command::Audit(args) => return run_audit(args),
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("vendor-grants: error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `vendor-grants audit`: standard AWS configuration (`AWS_ENDPOINT_URL` honoured, the region
/// from the environment).
fn run_audit(args: AuditArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vendor-grants: error: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(audit(&args)) {
        Ok((text, code)) => {
            println!("{}", text.trim_end());
            ExitCode::from(code)
        }
        Err(message) => {
            eprintln!("vendor-grants: error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn audit(args: &AuditArgs) -> Result<(String, u8), String> {
    use std::io::IsTerminal;
    use std::sync::Arc;
    use vendor_grants::audit::{self, output, repair::Repairs, scan::Scope};
    use vendor_grants::aws::{Clients, list, lock::Locker};
    use vendor_grants::lifecycle::{Env, Home};

    let catalog = Catalog::builtin().map_err(|e| e.to_string())?;
    let config = vendor_grants::aws::config_loader().load().await;
    usable(&config).await?;
    let clients = Clients::from_config(&config);
    let account = list::account_id(&config).await.map_err(|e| e.to_string())?;
    let home = Home {
        partition: partition_of_region(&clients.region).to_string(),
        region: clients.region.clone(),
        account: account.clone(),
    };
    let locker = Locker::new(&clients, args.lock_table.as_deref())
        .with_registry_key(&clients, args.registry_key.as_deref());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    // The allow-lists a Create checks, so that --fix checks them too.
    let allowed = vendor_grants::config::Config::from_env().allowed;
    let env = Env {
        home: &home,
        allowed: &allowed,
        clients: &clients,
        locker: &locker,
        catalog,
        deadline,
    };
    let progress: Option<Arc<dyn Fn(usize, usize) + Send + Sync>> =
        std::io::stderr().is_terminal().then(|| {
            Arc::new(|done: usize, total: usize| {
                let end = if done == total { "\r\x1b[2K" } else { "" };
                eprint!("\rreading {done}/{total}{end}");
            }) as Arc<dyn Fn(usize, usize) + Send + Sync>
        });
    let scope = Scope {
        account,
        buckets: args.buckets.clone(),
        registry: locker.registry(),
        concurrency: args.concurrency,
        deadline,
        progress,
    };
    let repairs = Repairs {
        fix: args.fix,
        remove_orphans: args.remove_orphans,
        confirmed: args.yes,
    };
    let outcome = audit::run(env, &scope, repairs)
        .await
        .map_err(|e| e.to_string())?;
    let code = audit::exit_code(&outcome);
    let text = match (args.emit, args.json) {
        (Some(Emit::AccessAnalyzerArchiveRules), _) => {
            pretty(&output::archive_rules(&outcome.entries, &home.partition))?
        }
        (Some(Emit::ConfigGranteeCheck), _) => {
            pretty(&output::config_grantee_check(&outcome.entries))?
        }
        (None, true) => pretty(&output::to_json(&outcome))?,
        (None, false) => output::table(&outcome),
    };
    Ok((text, code))
}

/// Whether the configuration can make a call at all: a region and credentials. Each missing one
/// is said in one line with what to set, rather than as the first call's failure.
async fn usable(config: &aws_config::SdkConfig) -> Result<(), String> {
    use aws_credential_types::provider::ProvideCredentials;
    use vendor_grants::aws::Failure;
    if config.region().is_none() {
        return Err(Failure::NoRegion.to_string());
    }
    let Some(provider) = config.credentials_provider() else {
        return Err(Failure::NoCredentials.to_string());
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => {
            use aws_credential_types::provider::error::CredentialsError;
            match e {
                // A configuration that names what does not work (a missing profile): its words.
                CredentialsError::InvalidConfiguration(_) => Err(format!(
                    "the AWS configuration is not valid: {}; fix AWS_PROFILE or ~/.aws/config",
                    vendor_grants::aws::failure::chain_of(&e)
                )),
                // None found, or a provider that failed (IMDS off an EC2 host): the chain would
                // quote raw answers, and the next step is the same.
                _ => Err(Failure::NoCredentials.to_string()),
            }
        }
    }
}

fn pretty(value: &serde_json::Value) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}
