//! `flotilla certs ca|node|client`: the TLS quick start (docs/OPERATIONS.md "TLS"); the work is
//! `flotilla_tls::generate`'s, this prints what was written and what to do with it.

use std::io::Write;

use flotilla_tls::generate;

use crate::cli::CertsAction;

pub fn run(action: CertsAction, out: &mut impl Write) -> anyhow::Result<()> {
    let (written, next, json) = match action {
        CertsAction::Ca { out: dir, days, json } => (
            generate::make_ca(&dir, days)?,
            format!(
                "next: flotilla certs node --ca {} --cluster NAME --name HOST[,IP] --out DIR",
                dir.display()
            ),
            json,
        ),
        CertsAction::Node {
            ca,
            cluster,
            name,
            out: dir,
            days,
            json,
        } => (
            generate::make_node(&ca, &cluster, &name, &dir, days)?,
            format!(
                "start the node with --tls-cert {} --tls-key {} --tls-ca {}",
                dir.join(generate::NODE_CERT).display(),
                dir.join(generate::NODE_KEY).display(),
                dir.join(generate::CA_CERT).display()
            ),
            json,
        ),
        CertsAction::Client {
            ca,
            name,
            out: dir,
            days,
            json,
        } => (
            generate::make_client(&ca, &name, &dir, days)?,
            format!(
                "use it with --tls-ca {} --tls-cert {} --tls-key {}",
                dir.join(generate::CA_CERT).display(),
                dir.join(generate::CLIENT_CERT).display(),
                dir.join(generate::CLIENT_KEY).display()
            ),
            json,
        ),
    };
    if json {
        let written: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        writeln!(out, "{}", serde_json::json!({ "written": written, "next": next }))?;
        return Ok(());
    }
    for path in written {
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(out, "{next}")?;
    Ok(())
}
