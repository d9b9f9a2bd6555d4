//! `flotilla certs ca|node|client`: the TLS quick start (docs/OPERATIONS.md "TLS"); the work is
//! `flotilla_tls::generate`'s, this prints what was written and what to do with it.

use std::io::Write;

use flotilla_tls::generate;

use crate::cli::CertsAction;

pub fn run(action: CertsAction, out: &mut impl Write) -> anyhow::Result<()> {
    let (written, next) = match action {
        CertsAction::Ca { out: dir, days } => (
            generate::make_ca(&dir, days)?,
            format!(
                "next: flotilla certs node --ca {} --cluster NAME --name HOST[,IP] --out DIR",
                dir.display()
            ),
        ),
        CertsAction::Node {
            ca,
            cluster,
            name,
            out: dir,
            days,
        } => (
            generate::make_node(&ca, &cluster, &name, &dir, days)?,
            format!(
                "start the node with --tls-cert {} --tls-key {} --tls-ca {}",
                dir.join(generate::NODE_CERT).display(),
                dir.join(generate::NODE_KEY).display(),
                dir.join(generate::CA_CERT).display()
            ),
        ),
        CertsAction::Client {
            ca,
            name,
            out: dir,
            days,
        } => (
            generate::make_client(&ca, &name, &dir, days)?,
            format!(
                "use it with --tls-ca {} --tls-cert {} --tls-key {}",
                dir.join(generate::CA_CERT).display(),
                dir.join(generate::CLIENT_CERT).display(),
                dir.join(generate::CLIENT_KEY).display()
            ),
        ),
    };
    for path in written {
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(out, "{next}")?;
    Ok(())
}
