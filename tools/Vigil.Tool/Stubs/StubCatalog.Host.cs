using System.Collections.Generic;

namespace Vigil.Tool.Stubs;

/// <summary>Host-environment stubs (IDT entry points, descriptor-table and CR3 switching) for the hypervisor.</summary>
internal static partial class StubCatalog
{
    private static IEnumerable<Stub> HostStubs()
    {
        yield break;
    }
}
