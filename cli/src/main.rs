//! `groupcast`: the command-line tool. Thin: it parses arguments, calls the
//! libraries and prints.

mod args;
mod log;
mod net;
mod output;
mod scenario;
mod sim_args;
mod stream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Reliable multicast over IPv6: RaptorQ carousels, verified byte-for-byte.
#[derive(Parser)]
#[command(name = "groupcast", version, about, long_about = None, after_help = "\
Start with `groupcast demo`: it carries a 32 MiB object to 20 simulated receivers through 10% \
loss, using the real protocol code and real RaptorQ, and checks every copy byte for byte.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log lines on stderr: -v for the session lock, stalled and timed-out receivers; -vv
    /// for every object completed or failed, and refused datagrams. RUST_LOG (for example
    /// RUST_LOG=groupcast=debug) overrides both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors in the log (progress and summaries still print).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Carry an object to many simulated receivers and check every copy (no privileges needed).
    ///
    /// A friendly preset of `groupcast sim`: real packets and real RaptorQ over an in-process
    /// network with independent loss per receiver. Prints progress, then a table per receiver,
    /// and exits non-zero unless every receiver's copy is byte-identical to the source.
    Demo(sim_args::DemoArgs),
    /// Run one simulated scenario and report what it cost.
    ///
    /// The simulator drives the same Sender and Receiver code that runs on real networks, with
    /// seeded, reproducible loss, reordering, duplication and delay. `--json` prints one JSON
    /// object whose keys are documented in docs/cli.md.
    Sim(sim_args::SimArgs),
    /// Send a file or directory to a channel over IPv6 multicast.
    ///
    /// Sends the files with a manifest of their paths, sizes, modes and BLAKE3 hashes, and prints
    /// the transfer id (the manifest's hash; see `groupcast id`). By default (hybrid) it sends
    /// each block's source symbols, then fresh RaptorQ repair for what receivers report
    /// missing, and exits once every receiver is complete; `--mode carousel` loops with no back
    /// channel instead.
    Send(args::SendArgs),
    /// Receive the files sent to a channel, verified, into a directory.
    ///
    /// Takes nothing but a manifest until one verifies (with --expect, only the one with that
    /// transfer id); then only the files that manifest lists, each written through a temporary
    /// file in a private staging directory once its size and BLAKE3 hash match the manifest.
    /// A transfer is placed whole or not at all: the files are renamed into place, without
    /// following links or replacing anything, once every one of them has verified. Exits 0
    /// once every file of the manifest is in place; non-zero, naming them, if some were
    /// refused (and then none is placed).
    Recv(args::RecvArgs),
    /// A line-based group chat: every participant both sends and receives.
    ///
    /// Lines typed go to everyone on the channel, in order and reliably (the message API,
    /// `groupcast::io::pubsub::Endpoint`); everyone else's lines are printed as they come.
    /// End of input (Ctrl-D) leaves.
    Chat(args::ChatArgs),
    /// Print the transfer id of a file or directory, without sending anything.
    ///
    /// The id is the BLAKE3 hash of the manifest `groupcast send PATH` would send: it depends
    /// only on the files (their paths, sizes, modes and contents). Hand it to receivers over a
    /// channel you trust, and `groupcast recv --expect ID` accepts that transfer and no other.
    Id {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The part size the sender uses (`send --part-size`).
        #[arg(long, default_value = "64MiB", value_parser = args::parse_part_size, value_name = "SIZE")]
        part_size: u64,
        /// The sender's public key (PREFIX.pub, or its 64 hex digits): print the signed
        /// transfer's id, which pins the key too (`send --sign` prints the same).
        #[arg(long, value_parser = args::parse_verifying_key, value_name = "KEY")]
        key: Option<groupcast::proto::auth::VerifyingKey>,
    },
    /// Make keys: a signing key pair (--out PREFIX), or a channel key (--channel-key FILE).
    ///
    /// `send --sign PREFIX.key` signs everything it sends; `recv --sender-key PREFIX.pub` then
    /// takes nothing that key did not sign. Prints the public key's fingerprint.
    /// `--key-file FILE` with the channel key, on the sender and every receiver, encrypts the
    /// channel: only holders of the key read it (docs/security.md).
    Keygen(args::KeygenArgs),
    /// Print the IPv6 multicast group of a channel name.
    ///
    /// The group is ff1e::/16 followed by the first 14 bytes of BLAKE3(NAME), the address
    /// Librecast derives for the same name.
    Channel {
        /// The channel's name, 1 to 255 bytes. With --verbose (-v), the feedback side channel
        /// and the port too.
        #[arg(value_parser = args::parse_channel)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Demo(args) => scenario::demo(&args),
        Command::Sim(args) => scenario::sim(&args),
        Command::Send(args) => {
            groupcast::io::tune_allocator(groupcast::io::AllocatorRole::Sender);
            if args.stream {
                stream::send(&args)
            } else {
                net::send(&args)
            }
        }
        Command::Recv(args) => {
            groupcast::io::tune_allocator(groupcast::io::AllocatorRole::Receiver {
                decode_threads: args.decode_threads(),
            });
            if args.stream {
                stream::recv(&args)
            } else {
                net::recv(&args)
            }
        }
        Command::Chat(args) => {
            groupcast::io::tune_allocator(groupcast::io::AllocatorRole::Sender);
            stream::chat(&args)
        }
        Command::Id {
            path,
            part_size,
            key,
        } => net::id(&path, part_size, key.as_ref()),
        Command::Keygen(args) => keygen(&args),
        Command::Channel { name } => {
            let verbose = cli.verbose > 0;
            let ch = groupcast::Channel::new(&name);
            println!("{}", ch.group());
            if verbose {
                println!("feedback group: {}", ch.feedback_group());
                println!("port: {}", ch.port());
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupcast: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `groupcast keygen --out PREFIX` or `--channel-key FILE`.
fn keygen(args: &args::KeygenArgs) -> Result<(), String> {
    use groupcast::io::keys;
    if let Some(path) = &args.channel_key {
        let key = keys::generate_channel_key().map_err(|e| e.to_string())?;
        keys::write_channel_key(path, &key)?;
        println!(
            "channel key: {} (mode 600; for --key-file on the sender and every receiver)",
            path.display()
        );
        return Ok(());
    }
    let Some(out) = &args.out else {
        return Err("keygen: give --out PREFIX or --channel-key FILE".into());
    };
    let key = keys::generate().map_err(|e| e.to_string())?;
    let (secret, public) = keys::write_pair(out, &key)?;
    println!(
        "secret key: {} (mode 600; for send --sign)",
        secret.display()
    );
    println!("public key: {} (for recv --sender-key)", public.display());
    println!("fingerprint: {}", keys::fingerprint(&key.verifying_key()));
    Ok(())
}
