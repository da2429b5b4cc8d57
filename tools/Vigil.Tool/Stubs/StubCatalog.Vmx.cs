using System.Collections.Generic;

namespace Vigil.Tool.Stubs;

/// <summary>Intel VMX stubs (SDM Vol 3C ch. 24-31): VMXON, VMREAD/VMWRITE, the launch and the exit entry point.</summary>
internal static partial class StubCatalog
{
    private static IEnumerable<Stub> VmxStubs()
    {
        yield break;
    }
}
