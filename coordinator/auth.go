package coordinator

import (
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/obs"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Policy is who may call CoordinatorService when the coordinator serves
// mutual TLS: operators submit and cancel jobs; viewers and operators
// read them. Coordinators and workers call none of it. Every role may ask
// the gRPC health service.
var Policy = obs.WithHealth(mtls.Policy{
	pb.CoordinatorService_SubmitJob_FullMethodName: {mtls.RoleOperator},
	pb.CoordinatorService_CancelJob_FullMethodName: {mtls.RoleOperator},
	pb.CoordinatorService_GetJob_FullMethodName:    {mtls.RoleViewer, mtls.RoleOperator},
	pb.CoordinatorService_ListJobs_FullMethodName:  {mtls.RoleViewer, mtls.RoleOperator},
	pb.CoordinatorService_WatchJob_FullMethodName:  {mtls.RoleViewer, mtls.RoleOperator},
})

// tlsIdentity describes the coordinator's transport for its logs.
func (c *Coordinator) tlsIdentity() string {
	if c.tls == nil {
		return "off (plain text)"
	}
	return c.tls.Identity().URI()
}
