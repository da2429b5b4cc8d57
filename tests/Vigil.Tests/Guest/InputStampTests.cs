using System;
using System.IO;
using Vigil.Tool.Guest;
using Xunit;

namespace Vigil.Tests.Guest;

/// <summary>The digest that lets `vigil guest` skip a module build or an initramfs whose inputs did not change.</summary>
public sealed class InputStampTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "vigil-stamp-" + Guid.NewGuid().ToString("N"));

    public InputStampTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "src", "sub"));
        File.WriteAllText(Path.Combine(_dir, "src", "a.c"), "int a;");
        File.WriteAllText(Path.Combine(_dir, "src", "sub", "b.h"), "int b;");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Tree(string headers = "6.1.0-57") => new InputStamp().Add("headers", headers).AddTree(Path.Combine(_dir, "src")).Finish();

    [Fact]
    public void The_same_inputs_give_the_same_digest_and_any_change_another()
    {
        string before = Tree();
        Assert.Equal(before, Tree());
        Assert.NotEqual(before, Tree("6.1.0-58"));

        File.WriteAllText(Path.Combine(_dir, "src", "sub", "b.h"), "int b; ");
        Assert.NotEqual(before, Tree());
        File.WriteAllText(Path.Combine(_dir, "src", "sub", "b.h"), "int b;");
        Assert.Equal(before, Tree());

        File.Move(Path.Combine(_dir, "src", "a.c"), Path.Combine(_dir, "src", "c.c"));   // same bytes, other name
        Assert.NotEqual(before, Tree());
    }

    [Fact]
    public void Names_keep_values_apart()
        => Assert.NotEqual(new InputStamp().Add("a", "bc").Finish(), new InputStamp().Add("ab", "c").Finish());

    [Fact]
    public void A_stamp_is_current_only_with_the_same_digest_and_every_output_present()
    {
        string stamp = Path.Combine(_dir, "out.inputs");
        string output = Path.Combine(_dir, "out.ko");
        string digest = Tree();
        Assert.False(InputStamp.IsCurrent(stamp, digest, output));
        InputStamp.Record(stamp, digest);
        Assert.False(InputStamp.IsCurrent(stamp, digest, output));   // the output is missing
        File.WriteAllText(output, "ko");
        Assert.True(InputStamp.IsCurrent(stamp, digest, output));
        Assert.False(InputStamp.IsCurrent(stamp, Tree("other"), output));
    }
}
