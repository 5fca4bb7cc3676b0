//! Where a report's figures come from: the four queries of the query API it
//! asks, whoever answers them.

use std::future::Future;

use baton_proto::v1;

/// The query API, as far as a report needs it. Implemented over a gRPC
/// client (batonctl) and over the projector's own query service (the board),
/// so both show the same figures as `GetMatrix` and `GetCompliance`.
pub trait Source {
    fn get_matrix(
        &mut self,
        request: v1::GetMatrixRequest,
    ) -> impl Future<Output = Result<v1::GetMatrixResponse, tonic::Status>> + Send;

    fn get_compliance(
        &mut self,
        request: v1::GetComplianceRequest,
    ) -> impl Future<Output = Result<v1::GetComplianceResponse, tonic::Status>> + Send;

    fn list_breaches(
        &mut self,
        request: v1::ListBreachesRequest,
    ) -> impl Future<Output = Result<v1::ListBreachesResponse, tonic::Status>> + Send;

    fn list_disruptions(
        &mut self,
        request: v1::ListDisruptionsRequest,
    ) -> impl Future<Output = Result<v1::ListDisruptionsResponse, tonic::Status>> + Send;
}
