using System.IO;
using Vigil.Tool.Commands;
using Xunit;

namespace Vigil.Tests.Tools;

public class SymbolizeTests
{
    [Fact]
    public void Names_the_symbol_at_or_below_each_address()
    {
        string path = Path.GetTempFileName();
        File.WriteAllText(path, """
             vigil

             Preferred load address is 0000000140000000

              Address         Publics by Value              Rva+Base               Lib:Object

             0000:00000000       __ImageBase                0000000140000000     <linker-defined>
             0005:00000000       Vigil_Boot_Vigil_Boot_BootLog__AttachSerial 0000000140008000     vigil.obj
             0005:000005c0       Vigil_Boot_Vigil_Boot_EfiMain__Main 00000001400085c0     vigil.obj
            """);
        try
        {
            var map = SymbolizeCommand.MapFile.Load(path);
            Assert.Equal("Vigil_Boot_Vigil_Boot_EfiMain__Main+0x10", map.Describe(0x85d0));
            Assert.Equal("Vigil_Boot_Vigil_Boot_BootLog__AttachSerial+0x0", map.Describe(0x8000));
            Assert.Equal("__ImageBase+0x7fff", map.Describe(0x7fff));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
