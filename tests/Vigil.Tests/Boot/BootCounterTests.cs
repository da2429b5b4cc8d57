using Vigil.Abi;
using Xunit;

namespace Vigil.Tests.Boot;

public class BootCounterTests
{
    [Theory]
    [InlineData(BootCounterRead.NotFound, 0u, BootCounterAction.Launch, 1u)]
    [InlineData(BootCounterRead.Found, 0u, BootCounterAction.Launch, 1u)]
    [InlineData(BootCounterRead.Found, 1u, BootCounterAction.Launch, 2u)]
    [InlineData(BootCounterRead.Found, 2u, BootCounterAction.Launch, 3u)]
    [InlineData(BootCounterRead.Found, 3u, BootCounterAction.FailSafe, 3u)]
    [InlineData(BootCounterRead.Found, 0xFFFF_FFFFu, BootCounterAction.FailSafe, 0xFFFF_FFFFu)]
    [InlineData(BootCounterRead.Malformed, 0u, BootCounterAction.FailSafe, 3u)]
    [InlineData(BootCounterRead.Unreadable, 0u, BootCounterAction.LaunchWithoutCounter, 1u)]
    public void Each_count_decides_launch_or_fail_safe(BootCounterRead read, uint stored, BootCounterAction action, uint next)
    {
        Assert.Equal(action, BootCounter.Decide(read, stored, out uint n));
        Assert.Equal(next, n);
    }

    [Fact]
    public void Three_unconfirmed_starts_then_the_fourth_is_fail_safe_and_stays_so_until_reset()
    {
        var read = BootCounterRead.NotFound;
        uint stored = 0;
        for (int start = 1; start <= 3; start++)
        {
            Assert.Equal(BootCounterAction.Launch, BootCounter.Decide(read, stored, out stored));
            Assert.Equal((uint)start, stored);
            read = BootCounterRead.Found;
        }
        for (int later = 0; later < 3; later++) Assert.Equal(BootCounterAction.FailSafe, BootCounter.Decide(read, stored, out stored));
        Assert.Equal(3u, stored);
        // vigild confirm --retry writes 0: the next start launches again.
        Assert.Equal(BootCounterAction.Launch, BootCounter.Decide(BootCounterRead.Found, 0, out stored));
        Assert.Equal(1u, stored);
    }

    [Fact]
    public void The_reason_fits_the_boot_state_and_names_the_way_back()
    {
        string reason = BootCounter.FailSafeReason(BootCounterRead.Found, 3);
        Assert.StartsWith(BootCounter.FailSafePrefix, reason, System.StringComparison.Ordinal);
        Assert.Contains("vigild confirm --retry", reason, System.StringComparison.Ordinal);
        Assert.True(BootState.Unprotected(reason).Length <= BootState.MaxTextBytes, reason);
        Assert.True(BootState.Unprotected(BootCounter.FailSafeReason(BootCounterRead.Malformed, 0)).Length <= BootState.MaxTextBytes);
    }

    [Fact]
    public void The_variable_is_non_volatile_runtime_writable_and_named_for_efivarfs()
    {
        Assert.Equal(0x7u, BootCounter.Attributes);
        Assert.Equal("VigilBootCount-b78fc943-5ef5-48db-937d-54deaafcf25b", BootCounter.EfivarsName);
        Assert.Equal(0x0403_0201u, BootCounter.Decode(1, 2, 3, 4));
    }
}
