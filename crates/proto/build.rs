//! Compiles `proto/` without a system `protoc`: protox parses the files, tonic-prost-build
//! generates the code, and the encoded descriptor set is kept for server reflection.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "redress/common/v1/common.proto",
    "redress/common/v1/event.proto",
    "redress/intake/v1/intake.proto",
    "redress/case/v1/case.proto",
    "redress/escalation/v1/escalation.proto",
    "redress/metrics/v1/metrics.proto",
    "redress/knowledge/v1/knowledge.proto",
    // Error details, so that the gateway can render `grpc-status-details-bin` as JSON.
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not compiled in: a build script reused from a shared target directory
    // by a clone at another path must still find this clone's protos.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_source_info(true).include_imports(true).open_files(FILES)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Encoded from the compiler's own descriptors, not from `prost_types`, which drops the
    // extension options it has no field for: the gateway reads `google.api.http` from here.
    std::fs::write(out.join("redress_descriptor.bin"), compiler.encode_file_descriptor_set())?;
    let fds = compiler.file_descriptor_set();
    // Type names let events carry their payloads as `google.protobuf.Any` by full name.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds_with_config(fds, config)?;
    Ok(())
}
