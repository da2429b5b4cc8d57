using System.Text;
using Vigil.Boot.Config;
using Xunit;

namespace Vigil.Tests.Boot;

public class ConfigParserTests
{
    private static ConfigParseResult Parse(string text) => ConfigParser.Parse(Encoding.ASCII.GetBytes(text));

    private static string[] Messages(ConfigParseResult result)
    {
        var messages = new string[result.DiagnosticCount];
        for (int i = 0; i < messages.Length; i++) messages[i] = result.Diagnostic(i).ToString();
        return messages;
    }

    [Fact]
    public void Empty_file_gives_the_defaults_and_no_diagnostics()
    {
        var result = Parse("");
        Assert.Equal(VigilConfig.DefaultLoader, result.Config.Loader);
        Assert.Equal(VigilConfig.DefaultOptions, result.Config.Options);
        Assert.Equal(VigilConfig.DefaultLogPort, result.Config.LogPort);
        Assert.Empty(Messages(result));
    }

    [Fact]
    public void Valid_settings_comments_blank_lines_and_crlf_are_accepted()
    {
        var result = Parse("# Vigil\r\n\r\n  loader = \\EFI\\debian\\grubx64.efi  \r\noptions=quiet a#b splash # trailing comment\r\n\tlog_port\t= com1\t# COM1\r\n");
        Assert.Equal("\\EFI\\debian\\grubx64.efi", result.Config.Loader);
        Assert.Equal("quiet a#b splash", result.Config.Options);
        Assert.Equal(0x3F8, result.Config.LogPort);
        Assert.Empty(Messages(result));
    }

    [Theory]
    [InlineData("com1", 0x3F8)]
    [InlineData("COM2", 0x2F8)]
    [InlineData("com3", 0x3E8)]
    [InlineData("Com4", 0x2E8)]
    [InlineData("0x3e0", 0x3E0)]
    [InlineData("0X2F8", 0x2F8)]
    [InlineData("1016", 0x3F8)]
    [InlineData("none", 0)]
    [InlineData("off", 0)]
    [InlineData("0", 0)]
    public void Log_port_accepts_names_and_numbers(string value, int expected)
    {
        var result = Parse("log_port = " + value);
        Assert.Empty(Messages(result));
        Assert.Equal(expected, result.Config.LogPort);
    }

    [Theory]
    [InlineData("banana")]
    [InlineData("0x")]
    [InlineData("0x10000")]
    [InlineData("65529")]
    [InlineData("-1")]
    [InlineData("com5")]
    [InlineData("")]
    public void Bad_log_port_names_the_line_and_the_default(string value)
    {
        var result = Parse("# c\nlog_port = " + value + "\n");
        Assert.Equal(VigilConfig.DefaultLogPort, result.Config.LogPort);
        var message = Assert.Single(Messages(result));
        Assert.StartsWith("vigil.conf line 2: log_port '" + value + "' is not", message);
        Assert.Contains("using the default COM2 (0x2F8)", message);
    }

    [Theory]
    [InlineData("loader =", "is empty")]
    [InlineData("loader = EFI\\x.efi", "is not an absolute path")]
    [InlineData("loader = /EFI/x.efi", "is not an absolute path")]
    [InlineData("loader = \\EFI/x.efi", "contains '/'")]
    [InlineData("loader = \\EFI\\", "names a folder")]
    [InlineData("loader = \\EFI\\a:b.efi", "contains ':'")]
    public void Bad_loader_names_the_line_and_the_default(string line, string problem)
    {
        var result = Parse("options = x\n" + line);
        Assert.Equal(VigilConfig.DefaultLoader, result.Config.Loader);
        var message = Assert.Single(Messages(result));
        Assert.StartsWith("vigil.conf line 2: loader ", message);
        Assert.Contains(problem, message);
        Assert.EndsWith("using the default " + VigilConfig.DefaultLoader, message);
    }

    [Fact]
    public void Unknown_key_missing_equals_and_duplicates_are_reported()
    {
        var result = Parse("polcy = strict\njust words\nloader = \\a.efi\nloader = \\b.efi\n");
        Assert.Equal("\\b.efi", result.Config.Loader);
        Assert.Equal(
            [
                "vigil.conf line 1: unknown key 'polcy' (known: loader, options, log_port, hypervisor, policy); line ignored",
                "vigil.conf line 2: expected 'key = value' but found 'just words'; line ignored",
                "vigil.conf line 4: 'loader' was already set on line 3; this later value is used",
            ],
            Messages(result));
    }

    [Fact]
    public void Policy_names_a_compiled_policy_on_the_volume_or_the_built_in_rules()
    {
        Assert.Equal(VigilConfig.DefaultPolicy, Parse("").Config.Policy);
        Assert.Equal("\\EFI\\vigil\\default.pol", VigilConfig.DefaultPolicy);
        Assert.Equal("\\EFI\\vigil\\audit.pol", Parse("policy = \\EFI\\vigil\\audit.pol\n").Config.Policy);
        var builtIn = Parse("policy = built-in\n");
        Assert.Null(builtIn.Config.Policy);
        Assert.Empty(Messages(builtIn));
        Assert.Null(Parse("policy = BUILTIN\n").Config.Policy);
    }

    [Theory]
    [InlineData("policy = default.pol", "is not an absolute path on the boot volume")]
    [InlineData("policy = \\EFI\\vigil\\", "names a folder, not a file")]
    [InlineData("policy =", "is empty")]
    public void A_bad_policy_path_is_reported_and_the_default_used(string line, string problem)
    {
        var result = Parse(line + "\n");
        Assert.Equal(VigilConfig.DefaultPolicy, result.Config.Policy);
        string message = Assert.Single(Messages(result));
        Assert.StartsWith("vigil.conf line 1: policy ", message);
        Assert.Contains(problem, message);
        Assert.EndsWith("using the default " + VigilConfig.DefaultPolicy, message);
    }

    [Fact]
    public void Empty_options_are_allowed()
    {
        var result = Parse("options =\n");
        Assert.Equal("", result.Config.Options);
        Assert.Empty(Messages(result));
    }

    [Fact]
    public void Non_ascii_and_control_bytes_are_reported_with_the_column()
    {
        var result = ConfigParser.Parse([.. Encoding.ASCII.GetBytes("options = a"), 0xC3, 0xA9, (byte)'\n', (byte)'x', 0x01]);
        Assert.Equal(VigilConfig.DefaultOptions, result.Config.Options);
        Assert.Equal(
            [
                "vigil.conf line 1: contains a byte that is not printable ASCII (column 12); line ignored",
                "vigil.conf line 2: contains a byte that is not printable ASCII (column 2); line ignored",
            ],
            Messages(result));
    }

    [Fact]
    public void Utf8_byte_order_mark_is_skipped()
    {
        var result = ConfigParser.Parse([0xEF, 0xBB, 0xBF, .. Encoding.ASCII.GetBytes("options = ro")]);
        Assert.Equal("ro", result.Config.Options);
        Assert.Empty(Messages(result));
    }

    [Fact]
    public void Too_long_lines_and_files_are_rejected_loudly()
    {
        var line = Parse("options = " + new string('a', ConfigParser.MaxLineLength));
        Assert.Equal(VigilConfig.DefaultOptions, line.Config.Options);
        Assert.Equal("vigil.conf line 1: line is longer than 1024 characters; ignored", Assert.Single(Messages(line)));

        var file = ConfigParser.Parse(new byte[ConfigParser.MaxFileSize + 1]);
        Assert.Equal("vigil.conf: file is larger than 65536 bytes; ignoring all of it and using the defaults", Assert.Single(Messages(file)));
    }

    [Fact]
    public void Diagnostics_beyond_the_limit_are_counted_not_lost()
    {
        var text = new StringBuilder();
        for (int i = 0; i < ConfigParseResult.MaxDiagnostics + 5; i++) text.Append("bogus\n");
        var result = Parse(text.ToString());
        Assert.Equal(ConfigParseResult.MaxDiagnostics, result.DiagnosticCount);
        Assert.Equal(5, result.DroppedDiagnostics);
    }

    [Theory]
    [InlineData(0, "none")]
    [InlineData(0x3F8, "COM1 (0x3F8)")]
    [InlineData(0x2E8, "COM4 (0x2E8)")]
    [InlineData(0x3E0, "0x3E0")]
    public void Port_names(int port, string name) => Assert.Equal(name, VigilConfig.PortName((ushort)port));

    [Theory]
    [InlineData("on", true)]
    [InlineData("OFF", false)]
    [InlineData("Off", false)]
    public void Hypervisor_can_be_switched_off_for_measurements(string value, bool expected)
    {
        var result = Parse("hypervisor = " + value);
        Assert.Equal(expected, result.Config.Hypervisor);
        Assert.Empty(Messages(result));
    }

    [Fact]
    public void Bad_hypervisor_value_keeps_protection_on()
    {
        var result = Parse("hypervisor = maybe");
        Assert.True(result.Config.Hypervisor);
        Assert.Equal("vigil.conf line 1: hypervisor 'maybe' is neither on nor off; using the default on", Assert.Single(Messages(result)));
    }
}
