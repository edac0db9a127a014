//! Generates the `cicada.v1` code with a vendored `protoc`, so a fresh machine
//! needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_root.join("cicada/v1/cicada.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // A data file goes to every worker of a run: `Bytes` clones share it.
    config.bytes([".cicada.v1.DataFile.content"]);
    tonic_prost_build::configure().compile_with_config(config, &[file], &[proto_root])?;
    Ok(())
}
