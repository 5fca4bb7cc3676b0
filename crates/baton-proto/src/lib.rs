//! The generated `baton.v1` protobuf messages and gRPC stubs, the descriptor set
//! that server reflection serves, and the conversions between these wire types
//! and the domain's types.
//!
//! This crate is the only place that knows both the wire and the domain. It must
//! never hold business rules: a conversion either maps a field or names the field
//! it could not map.

pub mod v1 {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("baton.v1");
}

/// Encoded `FileDescriptorSet` of `baton.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("baton_descriptor");

pub mod convert;
