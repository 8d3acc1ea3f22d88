//! `fasttrack export`: a person's whole record (GDPR Art. 15 and 20), or
//! everyone's, as the operator with the database owner's login: any size (the
//! API stops at `export_too_large`), each export one statement and so one snapshot,
//! audited as the operator's.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use uuid::Uuid;

use crate::args::Database;
use crate::bar::Bar;
use crate::database::{Use, connect};
use shared::Registry;
use shared::foundation::db;
use shared::foundation::out::Blocking;
use shared::foundation::steps::Steps;
use shared::rights::export::{self, Exporter, Refused};

/// Whom to export.
pub enum Whom<'a> {
    Email(&'a str),
    User(Uuid),
    /// Everyone, one file each in this directory.
    Everyone(&'a Path),
}

pub async fn run(database: &Database, whom: Whom<'_>, out: Option<&Path>) -> Result<()> {
    let pool = connect(database, Use::Service).await?;
    match whom {
        Whom::Email(email) => {
            let id: Option<Uuid> = pool
                .read(async |conn| {
                    db::query_scalar("select id from shared.users where lower(email) = lower($1)")
                        .bind(email)
                        .fetch_optional(conn)
                        .await
                })
                .await?;
            let id = id.with_context(|| format!("no user has the email {email}"))?;
            one(&pool, id, out).await
        }
        Whom::User(id) => one(&pool, id, out).await,
        Whom::Everyone(dir) => everyone(&pool, dir).await,
    }
}

/// One record, to `out` or standard output.
async fn one(pool: &db::Pool, id: Uuid, out: Option<&Path>) -> Result<()> {
    match out {
        Some(path) => {
            let mut file =
                BufWriter::new(File::create(path).with_context(|| path.display().to_string())?);
            write(pool, id, &mut file).await?;
            file.flush()?;
            eprintln!("export: {} written", path.display());
        }
        None => {
            let mut stdout = BufWriter::new(std::io::stdout());
            write(pool, id, &mut stdout).await?;
            writeln!(stdout)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// Everyone's record, `<id>.json` each, with a progress bar.
async fn everyone(pool: &db::Pool, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let ids: Vec<Uuid> = pool
        .read(async |conn| {
            db::query_scalar("select id from shared.users order by id")
                .fetch_all(conn)
                .await
        })
        .await?;
    let bar = Bar::begun("export", "people", ids.len() as u64);
    for id in &ids {
        let path = dir.join(format!("{id}.json"));
        let mut file =
            BufWriter::new(File::create(&path).with_context(|| path.display().to_string())?);
        write(pool, *id, &mut file).await?;
        file.flush()?;
        bar.step();
    }
    bar.end();
    eprintln!("export: {} records written to {}", ids.len(), dir.display());
    Ok(())
}

async fn write(pool: &db::Pool, id: Uuid, out: &mut (impl Write + Send)) -> Result<()> {
    let mut out = Blocking(out);
    let registry = Registry::embedded();
    let written = pool
        .one_statement(async |conn| {
            export::write(conn, registry, Exporter::Operator, id, &mut out).await
        })
        .await
        .map_err(|e| anyhow::anyhow!("exporting {id}: {e}"))?;
    match written {
        Ok(()) => Ok(()),
        Err(Refused::NotFound) => bail!("no user has the id {id}"),
        Err(refused) => bail!("exporting {id}: refused ({refused:?})"),
    }
}
