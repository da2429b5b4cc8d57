using System;
using System.Text;

namespace Vigil.Tool.Policy;

public enum PolicySeverity
{
    Error,
    Warning,
}

/// <summary>
/// One finding of the compiler, at a 1-based line and column (characters of the line; a tab counts as one) spanning
/// <see cref="Length"/> characters, with what was expected there and the nearest known name if the word was unknown.
/// </summary>
public sealed record PolicyDiagnostic(PolicySeverity Severity, int Line, int Column, int Length, string Message, string? Expected = null, string? Suggestion = null, string? Note = null)
{
    /// <summary>
    /// As `vigil policy check` prints it:
    /// <code>
    /// FILE:LINE:COLUMN: error: MESSAGE
    ///    LINE | the line
    ///         |      ^~~~
    ///         = expected: ...
    ///         = did you mean 'name'?
    /// </code>
    /// <paramref name="lineText"/> is the line's text, or null past the end of the file.
    /// </summary>
    public string Format(string file, string? lineText)
    {
        var sb = new StringBuilder();
        sb.Append(file).Append(':').Append(Line).Append(':').Append(Column).Append(": ")
            .Append(Severity == PolicySeverity.Error ? "error" : "warning").Append(": ").Append(Message).Append('\n');
        string number = Line.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string gutter = new(' ', number.Length);
        sb.Append(' ').Append(number).Append(" | ").Append(lineText ?? "(end of file)").Append('\n');
        if (lineText != null)
        {
            // The caret goes under the same characters: tabs stay tabs so a terminal lines them up.
            var pad = new StringBuilder();
            for (int i = 0; i < Column - 1 && i < lineText.Length; i++) pad.Append(lineText[i] == '\t' ? '\t' : ' ');
            for (int i = lineText.Length; i < Column - 1; i++) pad.Append(' ');
            sb.Append(' ').Append(gutter).Append(" | ").Append(pad).Append('^').Append(new string('~', Math.Max(0, Length - 1))).Append('\n');
        }
        if (Expected != null) sb.Append(' ').Append(gutter).Append(" = expected: ").Append(Expected).Append('\n');
        if (Suggestion != null) sb.Append(' ').Append(gutter).Append(" = did you mean '").Append(Suggestion).Append("'?\n");
        if (Note != null) sb.Append(' ').Append(gutter).Append(" = note: ").Append(Note).Append('\n');
        return sb.ToString();
    }
}
