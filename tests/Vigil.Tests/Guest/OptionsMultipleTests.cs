using Vigil.Tool;
using Xunit;

namespace Vigil.Tests.Guest;

/// <summary>`vigil guest --scenario a --scenario b`: the repeatable option the guest verb added to <see cref="Options"/>.</summary>
public class OptionsMultipleTests
{
    [Fact]
    public void Repeated_options_are_read_in_order_by_Multiple()
    {
        var options = new Options(["--scenario", "smoke", "--refresh", "--scenario", "interactive"]);
        Assert.Equal(["smoke", "interactive"], options.Multiple("--scenario"));
        Assert.True(options.Flag("--refresh"));
        options.EnsureAllUsed();
    }

    [Fact]
    public void Absent_multiple_option_is_empty()
    {
        Assert.Empty(new Options([]).Multiple("--scenario"));
    }

    [Fact]
    public void Single_value_options_still_reject_a_repeat()
    {
        var options = new Options(["--target", "qemu", "--target", "bochs"]);
        Assert.Throws<UsageException>(() => options.Optional("--target"));
        Assert.Throws<UsageException>(() => new Options(["--refresh", "--refresh"]).Flag("--refresh"));
    }

    [Fact]
    public void Multiple_needs_a_value_each_time()
    {
        Assert.Throws<UsageException>(() => new Options(["--scenario", "--refresh"]).Multiple("--scenario"));
    }
}
