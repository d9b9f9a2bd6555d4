//! gRPC server reflection (`grpc.reflection.v1` and the older `v1alpha` that some tools still
//! ask first) over every service of `flotilla.v1` and `grpc.health.v1`, so `grpcurl` and other generic clients
//! list and call the node without the .proto files. It serves only the schema, which is
//! public; the auth layer still asks for a token with the read right on a node that wants
//! tokens (`grpc/auth.rs`).

use flotilla_proto::FILE_DESCRIPTOR_SET;
use tonic_reflection::server::Builder;
use tonic_reflection::server::Error;
use tonic_reflection::server::v1;
use tonic_reflection::server::v1alpha;

/// The `grpc.reflection.v1` service.
pub fn v1() -> Result<v1::ServerReflectionServer<impl v1::ServerReflection>, Error> {
    Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// The `grpc.reflection.v1alpha` service.
pub fn v1alpha() -> Result<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>, Error> {
    Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_descriptors_build_both_services() {
        assert!(super::v1().is_ok());
        assert!(super::v1alpha().is_ok());
    }
}
