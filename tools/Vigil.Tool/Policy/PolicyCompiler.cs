using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Vigil.Abi;
using Vigil.Hypervisor.Core.Guard;

namespace Vigil.Tool.Policy;

/// <summary>A policy compiled from its text: what goes into the blob.</summary>
public sealed class CompiledPolicy
{
    public GuardPolicyMode Mode { get; init; }
    public GuardVerdict Default { get; init; }
    public required IReadOnlyList<GuardRule> Rules { get; init; }

    /// <summary>Per rule: the line it came from (several rules may share one: a source rule naming several registers or MSRs).</summary>
    public required IReadOnlyList<RuleOrigin> Origins { get; init; }

    public required string Name { get; init; }
    public required byte[] Source { get; init; }

    public byte[] ToBlob() => PolicyImageWriter.Write(Mode, Default, Rules, Origins, Encoding.UTF8.GetBytes(Name), Source);
}

/// <summary>The outcome of compiling: the policy (null when there are errors) and every finding, in source order.</summary>
public sealed class PolicyCompilation
{
    public CompiledPolicy? Policy { get; init; }
    public required IReadOnlyList<PolicyDiagnostic> Diagnostics { get; init; }

    /// <summary>The source's lines (for showing findings in context).</summary>
    public required IReadOnlyList<string> Lines { get; init; }

    public bool HasErrors => Diagnostics.Any(d => d.Severity == PolicySeverity.Error);

    /// <summary>Every finding as `vigil policy check` prints it.</summary>
    public string Format(string file)
    {
        var sb = new StringBuilder();
        foreach (var d in Diagnostics) sb.Append(d.Format(file, d.Line >= 1 && d.Line <= Lines.Count ? Lines[d.Line - 1] : null));
        return sb.ToString();
    }
}

/// <summary>
/// The policy language (docs/policy.md): one statement per line, `#` comments.
/// <code>
/// enforce | audit-only                                   the mode, once
/// default VERDICT                                        when no rule matches, once
/// VERDICT [ACCESS[, ACCESS]...] OBJECT[, OBJECT]... [by REGION[, REGION]...] [rip A[..B]] [cpl N[, N]...] [cr3 A]
///         [when SHAPE [and SHAPE]...] [unless SHAPE [or SHAPE]...] [after-lock | before-lock]
/// </code>
/// Rules are tried in order, the first that matches gives the verdict. A rule naming several registers' bits or
/// several MSRs compiles into one GuardRule per register or MSR (the same line for each). Every error names its
/// line and column, what was expected there and, for an unknown word, the nearest known name. Never throws on any
/// input (the tests feed it random text).
/// </summary>
public static class PolicyCompiler
{
    public static PolicyCompilation Compile(string name, string text) => Compile(name, Encoding.UTF8.GetBytes(text));

    public static PolicyCompilation Compile(string name, byte[] source) => new Compilation(name, source).Run();

    private enum TokenKind
    {
        Word,
        Number,
        Comma,
        Range,
        Bad,
    }

    private readonly record struct Token(TokenKind Kind, string Text, int Column)
    {
        public int Length => Text.Length;
    }

    private sealed class Draft
    {
        public GuardVerdict Verdict;
        public readonly List<(GuardAccess Access, Token Token)> Accesses = [];
        public readonly List<(PolicyObject? Object, Token Token)> Objects = [];
        public readonly List<(ActorRegion Region, Token Token)> Regions = [];
        public readonly List<(int Cpl, Token Token)> Cpls = [];
        public ulong RipFirst, RipLast, Cr3;
        public readonly List<(GuardContent Shape, Token Token)> All = [];
        public readonly List<(GuardContent Shape, Token Token)> None = [];
        public LockCondition Lock;
    }

    private sealed class Compilation(string name, byte[] source)
    {
        private readonly List<PolicyDiagnostic> _diagnostics = [];
        private readonly List<string> _lines = [];
        private readonly List<GuardRule> _rules = [];
        private readonly List<RuleOrigin> _origins = [];
        private readonly List<(int Line, int First, int Count)> _sourceRules = [];
        private (GuardPolicyMode Mode, int Line)? _mode;
        private (GuardVerdict Verdict, int Line)? _default;
        private bool _tooMany;

        // The line being parsed.
        private List<Token> _tokens = [];
        private int _at;
        private int _line;
        private int _lineLength;

        public PolicyCompilation Run()
        {
            if (source.Length > GuardPolicyHeader.MaxSourceBytes)
            {
                Error(1, 1, 1, $"the file is {source.Length} bytes: a policy's text may be at most {GuardPolicyHeader.MaxSourceBytes} bytes (1 MiB)");
                return Done();
            }
            byte[] fileName = Encoding.UTF8.GetBytes(name);
            if (fileName.Length is 0 or > GuardPolicyHeader.MaxNameBytes || !GuardPolicyImage.IsUtf8(fileName, allowControl: false))
            {
                Error(1, 1, 1, $"the file name '{name}' cannot be stored in a compiled policy (1-{GuardPolicyHeader.MaxNameBytes} bytes of printable UTF-8)");
            }
            int offset = 0, number = 0;
            // Lines end with LF (a CR before it is dropped); a final line break does not start another line.
            while (offset < source.Length)
            {
                int end = Array.IndexOf(source, (byte)'\n', offset);
                bool last = end < 0;
                if (last) end = source.Length;
                int length = end - offset;
                if (length > 0 && source[end - 1] == (byte)'\r') length--;
                number++;
                ParseLine(number, offset, length);
                if (last) break;
                offset = end + 1;
            }
            int eof = _lines.Count + 1;
            if (_mode == null) Error(eof, 1, 1, "the policy has no mode line", "a line `enforce` (verdicts as written) or `audit-only` (every block becomes audit: for rollout)");
            if (_default == null) Error(eof, 1, 1, "the policy has no default verdict", "a line `default VERDICT` (allow, audit, block, block-and-fault): what happens when no rule matches");
            WarnShadowed();
            return Done();
        }

        private PolicyCompilation Done()
        {
            _diagnostics.Sort((a, b) => a.Line != b.Line ? a.Line.CompareTo(b.Line) : a.Column.CompareTo(b.Column));
            bool failed = _diagnostics.Any(d => d.Severity == PolicySeverity.Error);
            return new PolicyCompilation
            {
                Diagnostics = _diagnostics,
                Lines = _lines,
                Policy = failed ? null : new CompiledPolicy
                {
                    Mode = _mode!.Value.Mode,
                    Default = _default!.Value.Verdict,
                    Rules = _rules,
                    Origins = _origins,
                    Name = name,
                    Source = source,
                },
            };
        }

        private void Error(int line, int column, int length, string message, string? expected = null, string? suggestion = null, string? note = null)
            => _diagnostics.Add(new PolicyDiagnostic(PolicySeverity.Error, line, column, Math.Max(1, length), message, expected, suggestion, note));

        private void Error(Token t, string message, string? expected = null, string? suggestion = null, string? note = null)
            => Error(_line, t.Column, t.Length, message, expected, suggestion, note);

        // ---- lines and tokens ----------------------------------------------------------------------------------------

        private void ParseLine(int number, int offset, int length)
        {
            _line = number;
            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(source, offset, length);
            }
            catch (DecoderFallbackException)
            {
                // Show what decodes, and point at the first byte that does not.
                int good = 0;
                while (good < length && GuardPolicyImage.IsUtf8(source.AsSpan(offset, good + 1), allowControl: true)) good++;
                int end = good;
                while (end < length && end - good < 4 && !GuardPolicyImage.IsUtf8(source.AsSpan(offset + good, end - good + 1), allowControl: true)) end++;
                string shown = Encoding.UTF8.GetString(source, offset, good);
                _lines.Add(shown + "\uFFFD");
                Error(number, shown.Length + 1, 1, $"the text is not UTF-8 here (byte 0x{source[offset + good]:x2})", "a policy written in UTF-8");
                return;
            }
            _lines.Add(text);
            _lineLength = text.Length;
            int nul = text.IndexOf('\0', StringComparison.Ordinal);
            if (nul >= 0)
            {
                Error(number, nul + 1, 1, "a NUL character", "text (a policy is a text file)");
                return;
            }
            _tokens = Tokenize(text);
            _at = 0;
            if (_tokens.Count == 0) return;
            Statement(offset, length);
        }

        private List<Token> Tokenize(string text)
        {
            var tokens = new List<Token>();
            int i = 0;
            while (i < text.Length)
            {
                char c = text[i];
                // A byte-order mark (editors on Windows write one) is white space like any other.
                if (c is ' ' or '\t' or '\r' or '\f' or '\v' or '\uFEFF') { i++; continue; }
                if (c == '#') break;
                int start = i;
                if (c == ',') { tokens.Add(new Token(TokenKind.Comma, ",", start + 1)); i++; continue; }
                if (c == '.' && i + 1 < text.Length && text[i + 1] == '.') { tokens.Add(new Token(TokenKind.Range, "..", start + 1)); i += 2; continue; }
                if (char.IsAsciiDigit(c))
                {
                    while (i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] == '_')) i++;
                    tokens.Add(new Token(TokenKind.Number, text[start..i], start + 1));
                    continue;
                }
                if (char.IsAsciiLetter(c))
                {
                    while (i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] is '-' or '_' || (text[i] == '.' && !(i + 1 < text.Length && text[i + 1] == '.')))) i++;
                    tokens.Add(new Token(TokenKind.Word, text[start..i], start + 1));
                    continue;
                }
                // One unexpected character (a whole surrogate pair, so the caret covers one symbol).
                i += char.IsHighSurrogate(c) && i + 1 < text.Length ? 2 : 1;
                tokens.Add(new Token(TokenKind.Bad, text[start..i], start + 1));
            }
            return tokens;
        }

        private Token? Peek => _at < _tokens.Count ? _tokens[_at] : null;

        private Token EndToken => new(TokenKind.Bad, " ", Math.Max(_lineLength, _tokens.Count > 0 ? _tokens[^1].Column + _tokens[^1].Length - 1 : 0) + 1);

        /// <summary>The token at the cursor, or a one-column marker just after the line's last token.</summary>
        private Token Current => Peek ?? EndToken;

        private bool AtEnd => _at >= _tokens.Count;

        private static string Describe(Token t) => t.Kind switch
        {
            TokenKind.Bad when t.Text == " " => "the end of the line",
            TokenKind.Bad => $"'{t.Text}'",
            TokenKind.Comma => "','",
            TokenKind.Range => "'..'",
            TokenKind.Number => $"the number {t.Text}",
            _ => $"'{t.Text}'",
        };

        // ---- statements ----------------------------------------------------------------------------------------------

        private static readonly string StatementStarts = "a verdict (" + string.Join(", ", PolicyNames.Verdicts.Select(v => v.Name))
            + ") starting a rule, `default VERDICT`, or the mode `enforce` / `audit-only`";

        private static IEnumerable<string> StatementWords => PolicyNames.Verdicts.Select(v => v.Name).Concat(["default", "enforce", "audit-only"]);

        private void Statement(int offset, int length)
        {
            Token first = _tokens[0];
            if (first.Kind == TokenKind.Word && first.Text is "enforce" or "audit-only")
            {
                _at = 1;
                var mode = first.Text == "enforce" ? GuardPolicyMode.Enforce : GuardPolicyMode.AuditOnly;
                if (!ExpectEnd($"nothing after `{first.Text}` (the mode line is the word alone)")) return;
                if (_mode is { } m)
                {
                    Error(first, $"a second mode line (the first is on line {m.Line})", "one mode line per policy");
                    return;
                }
                _mode = (mode, _line);
                return;
            }
            if (first.Kind == TokenKind.Word && first.Text == "default")
            {
                _at = 1;
                if (!Verdict(out GuardVerdict verdict, "the default verdict")) return;
                if (!ExpectEnd("the end of the line after the default verdict")) return;
                if (_default is { } d)
                {
                    Error(first, $"a second default verdict (the first is on line {d.Line})", "one `default` line per policy");
                    return;
                }
                _default = (verdict, _line);
                return;
            }
            if (first.Kind == TokenKind.Word && first.Text == "mode")
            {
                Error(first, "the mode line is the mode alone", "`enforce` or `audit-only` on a line of its own");
                return;
            }
            if (first.Kind == TokenKind.Word && PolicyNames.Verdicts.Any(v => v.Name == first.Text))
            {
                Rule(offset, length);
                return;
            }
            if (first.Kind == TokenKind.Word && (PolicyNames.Accesses.Any(a => a.Name == first.Text) || PolicyNames.Objects.Any(o => o.Name == first.Text) || first.Text == PolicyNames.Anything))
            {
                Error(first, $"this rule has no verdict: '{first.Text}' is what it is about, not what to do", "a verdict first: allow, audit, block or block-and-fault",
                    note: $"for example `block {string.Join(' ', _tokens.Select(t => t.Text)).Replace(" ,", ",", StringComparison.Ordinal)}`");
                return;
            }
            Unexpected(first, StatementStarts, StatementWords);
        }

        private void Unexpected(Token t, string expected, IEnumerable<string> candidates, string? what = null)
        {
            string? near = t.Kind == TokenKind.Word ? PolicyNames.Nearest(t.Text, candidates) : null;
            string? note = t.Kind == TokenKind.Word ? KindOf(t.Text, candidates) : null;
            Error(t, what ?? $"unexpected {Describe(t)}", expected, near, note);
        }

        // When a known word of another kind stands where it does not belong, say what it is.
        private static string? KindOf(string word, IEnumerable<string> wanted)
        {
            if (wanted.Contains(word)) return null;
            if (PolicyNames.Verdicts.Any(v => v.Name == word)) return $"'{word}' is a verdict: it starts a rule";
            if (PolicyNames.Objects.Any(o => o.Name == word) && PolicyNames.Regions.Any(r => r.Name == word))
                return $"'{word}' is an object, and after `by` an actor region";
            if (PolicyNames.Objects.Any(o => o.Name == word)) return $"'{word}' is an object: objects follow the verdict and accesses, separated by ','";
            if (PolicyNames.Regions.Any(r => r.Name == word)) return $"'{word}' is an actor region: write `by {word}`";
            if (PolicyNames.Shapes.Any(s => s.Name == word)) return $"'{word}' is a content shape: write `when {word}` or `unless {word}`";
            if (PolicyNames.Accesses.Any(a => a.Name == word)) return $"'{word}' is an access: accesses come right after the verdict";
            if (PolicyNames.Clauses.Any(c => c.Name == word)) return $"'{word}' starts a clause: clauses come after the objects";
            return null;
        }

        private bool ExpectEnd(string expected)
        {
            if (AtEnd) return true;
            Unexpected(Current, expected, []);
            return false;
        }

        private bool Verdict(out GuardVerdict verdict, string what)
        {
            verdict = default;
            Token t = Current;
            var match = t.Kind == TokenKind.Word ? PolicyNames.Verdicts.FirstOrDefault(v => v.Name == t.Text) : null;
            if (match == null)
            {
                Unexpected(t, $"{what}: " + string.Join(", ", PolicyNames.Verdicts.Select(v => v.Name)), PolicyNames.Verdicts.Select(v => v.Name),
                    AtEnd ? $"{what} is missing" : $"unknown verdict {Describe(t)}");
                return false;
            }
            _at++;
            verdict = match.Value;
            return true;
        }

        // ---- rules ---------------------------------------------------------------------------------------------------

        private static readonly string ObjectList = string.Join(", ", PolicyNames.Objects.Select(o => o.Name)) + $" or `{PolicyNames.Anything}`";
        private static readonly string AccessList = string.Join(", ", PolicyNames.Accesses.Select(a => a.Name));
        private static readonly string RegionList = string.Join(", ", PolicyNames.Regions.Select(r => r.Name));
        private static readonly string ShapeList = string.Join(", ", PolicyNames.Shapes.Select(s => s.Name));
        private static readonly string ClauseList = string.Join(", ", PolicyNames.Clauses.Select(c => c.Name));

        private void Rule(int offset, int length)
        {
            var draft = new Draft();
            if (!Verdict(out draft.Verdict, "a verdict")) return;
            if (!Accesses(draft) || !Objects(draft) || !Clauses(draft)) return;
            if (!Check(draft)) return;
            Emit(draft, offset, length);
        }

        private bool Accesses(Draft draft)
        {
            while (Peek is { Kind: TokenKind.Word } t && PolicyNames.Accesses.FirstOrDefault(a => a.Name == t.Text) is { } access)
            {
                if (draft.Accesses.Any(a => a.Access == access.Value))
                {
                    Error(t, $"access '{t.Text}' named twice");
                    return false;
                }
                draft.Accesses.Add((access.Value, t));
                _at++;
                if (Peek is { Kind: TokenKind.Comma })
                {
                    _at++;
                    if (Peek is { Kind: TokenKind.Word } next && PolicyNames.Accesses.Any(a => a.Name == next.Text)) continue;
                    Unexpected(Current, "another access after ',': " + AccessList + " (the objects follow the last access without a ',')",
                        PolicyNames.Accesses.Select(a => a.Name));
                    return false;
                }
                break;
            }
            return true;
        }

        private bool Objects(Draft draft)
        {
            while (true)
            {
                Token t = Current;
                PolicyObject? match = t.Kind == TokenKind.Word ? PolicyNames.Objects.FirstOrDefault(o => o.Name == t.Text) : null;
                if (match == null && !(t.Kind == TokenKind.Word && t.Text == PolicyNames.Anything))
                {
                    var names = PolicyNames.Objects.Select(o => o.Name).Append(PolicyNames.Anything);
                    string what = AtEnd ? "the rule names no object: what is it about?"
                        : t.Kind == TokenKind.Word && PolicyNames.Objects.All(o => o.Name != t.Text) && KindOf(t.Text, names) == null ? $"unknown object '{t.Text}'"
                        : $"expected an object, found {Describe(t)}";
                    Unexpected(t, "an object: " + ObjectList, names, what);
                    return false;
                }
                if (draft.Objects.Any(o => o.Token.Text == t.Text))
                {
                    Error(t, $"object '{t.Text}' named twice");
                    return false;
                }
                draft.Objects.Add((match, t));
                _at++;
                if (Peek is not { Kind: TokenKind.Comma }) return true;
                _at++;
            }
        }

        private bool Clauses(Draft draft)
        {
            var seen = new Dictionary<string, Token>(StringComparer.Ordinal);
            while (!AtEnd)
            {
                Token t = Current;
                string? clause = t.Kind == TokenKind.Word ? PolicyNames.Clauses.FirstOrDefault(c => c.Name == t.Text).Name : null;
                if (clause == null)
                {
                    string? note = t.Kind == TokenKind.Word && PolicyNames.Objects.Any(o => o.Name == t.Text)
                        ? $"'{t.Text}' is an object: separate the objects with ','" : null;
                    string? near = t.Kind == TokenKind.Word ? PolicyNames.Nearest(t.Text, PolicyNames.Clauses.Select(c => c.Name)) : null;
                    Error(t, $"unexpected {Describe(t)} after the rule's objects", "a clause (" + ClauseList + ") or the end of the line", near,
                        note ?? (t.Kind == TokenKind.Word ? KindOf(t.Text, []) : null));
                    return false;
                }
                string key = clause is "after-lock" or "before-lock" ? "lock" : clause;
                if (seen.TryGetValue(key, out Token before))
                {
                    Error(t, $"`{t.Text}` given twice in one rule (first at column {before.Column})",
                        key == "lock" ? "at most one of after-lock, before-lock" : $"one `{clause}` clause listing everything it allows");
                    return false;
                }
                seen[key] = t;
                _at++;
                bool ok = clause switch
                {
                    "by" => RegionsClause(draft),
                    "rip" => RipClause(draft, t),
                    "cpl" => CplClause(draft),
                    "cr3" => Cr3Clause(draft),
                    "when" => ShapesClause(draft.All, "and", "when"),
                    "unless" => ShapesClause(draft.None, "or", "unless"),
                    "after-lock" => SetLock(draft, LockCondition.Locked),
                    _ => SetLock(draft, LockCondition.Unlocked),
                };
                if (!ok) return false;
            }
            return true;
        }

        private static bool SetLock(Draft draft, LockCondition condition)
        {
            draft.Lock = condition;
            return true;
        }

        private bool RegionsClause(Draft draft)
        {
            while (true)
            {
                Token t = Current;
                var match = t.Kind == TokenKind.Word ? PolicyNames.Regions.FirstOrDefault(r => r.Name == t.Text) : null;
                if (match == null)
                {
                    Unexpected(t, "an actor region after `by`: " + RegionList, PolicyNames.Regions.Select(r => r.Name),
                        AtEnd ? "`by` names no region" : t.Kind == TokenKind.Word ? $"unknown actor region '{t.Text}'" : null);
                    return false;
                }
                if (draft.Regions.Any(r => r.Region == match.Value))
                {
                    Error(t, $"region '{t.Text}' named twice");
                    return false;
                }
                draft.Regions.Add((match.Value, t));
                _at++;
                if (Peek is not { Kind: TokenKind.Comma }) return true;
                _at++;
            }
        }

        private bool RipClause(Draft draft, Token keyword)
        {
            if (!Number(out ulong first, out Token firstToken, "a RIP: a hex address such as 0xffffffffc0000000, or a range FIRST..LAST")) return false;
            ulong last = first;
            Token lastToken = firstToken;
            if (Peek is { Kind: TokenKind.Range })
            {
                _at++;
                if (!Number(out last, out lastToken, "the last RIP of the range (inclusive) after '..'")) return false;
            }
            int column = firstToken.Column, span = lastToken.Column + lastToken.Length - firstToken.Column;
            if (first > last)
            {
                Error(_line, column, span, $"empty RIP range: 0x{first:x} is above 0x{last:x}", "FIRST..LAST with FIRST <= LAST (both inclusive)",
                    note: "did you swap the two ends?");
                return false;
            }
            if (first == 0 && last == 0)
            {
                Error(_line, column, span, "`rip 0` cannot be expressed (a rule's RIP range 0..0 means any RIP)", "a non-zero address or range");
                return false;
            }
            draft.RipFirst = first;
            draft.RipLast = last;
            return true;
        }

        private bool CplClause(Draft draft)
        {
            while (true)
            {
                if (!Number(out ulong cpl, out Token t, "a privilege level 0, 1, 2 or 3")) return false;
                if (cpl > 3)
                {
                    Error(t, $"privilege level {t.Text} does not exist", "0 (kernel), 1, 2 or 3 (user)");
                    return false;
                }
                if (draft.Cpls.Any(c => c.Cpl == (int)cpl))
                {
                    Error(t, $"privilege level {cpl} named twice");
                    return false;
                }
                draft.Cpls.Add(((int)cpl, t));
                if (Peek is not { Kind: TokenKind.Comma }) return true;
                _at++;
            }
        }

        private bool Cr3Clause(Draft draft)
        {
            if (!Number(out ulong cr3, out Token t, "the address space's page-table base (CR3), a hex address")) return false;
            if (cr3 == 0 || (cr3 & ~GuardRules.Cr3AddressMask) != 0)
            {
                Error(t, $"0x{cr3:x} is not a page-table base", "a non-zero, 4 KiB-aligned physical address below 2^52 (CR3 without its PCID bits)");
                return false;
            }
            draft.Cr3 = cr3;
            return true;
        }

        private bool ShapesClause(List<(GuardContent Shape, Token Token)> into, string joiner, string clause)
        {
            string other = joiner == "and" ? "or" : "and";
            while (true)
            {
                Token t = Current;
                var match = t.Kind == TokenKind.Word ? PolicyNames.Shapes.FirstOrDefault(s => s.Name == t.Text) : null;
                if (match == null)
                {
                    Unexpected(t, $"a content shape after `{clause}`: " + ShapeList, PolicyNames.Shapes.Select(s => s.Name),
                        AtEnd ? $"`{clause}` names no content shape" : t.Kind == TokenKind.Word ? $"unknown content shape '{t.Text}'" : null);
                    return false;
                }
                if (into.Any(s => s.Shape == match.Value))
                {
                    Error(t, $"content shape '{t.Text}' named twice");
                    return false;
                }
                into.Add((match.Value, t));
                _at++;
                if (Peek is { Kind: TokenKind.Comma } comma)
                {
                    Error(comma, $"shapes after `{clause}` are joined with `{joiner}`", $"`{joiner}`",
                        note: clause == "when" ? "`when a and b`: every one must be present" : "`unless a or b`: the rule does not apply if any is present");
                    return false;
                }
                if (Peek is { Kind: TokenKind.Word } w && w.Text == other)
                {
                    Error(w, $"shapes after `{clause}` are joined with `{joiner}`, not `{other}`", $"`{joiner}`",
                        note: clause == "when" ? "`when a and b` needs every shape; for \"either\", write two rules" : "`unless a or b` excludes each; `unless a and b` cannot be expressed");
                    return false;
                }
                if (Peek is not { Kind: TokenKind.Word } j || j.Text != joiner) return true;
                _at++;
            }
        }

        private bool Number(out ulong value, out Token token, string expected)
        {
            value = 0;
            token = Current;
            if (token.Kind != TokenKind.Number)
            {
                Unexpected(token, expected, [], AtEnd ? "a number is missing" : $"expected a number, found {Describe(token)}");
                return false;
            }
            _at++;
            string digits = token.Text.Replace("_", "", StringComparison.Ordinal);
            bool hex = digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
            if (hex) digits = digits[2..];
            bool ok = digits.Length > 0 && (hex
                ? ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
                : ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value));
            if (ok) return true;
            bool digitsOnly = hex ? digits.Length > 0 && digits.All(char.IsAsciiHexDigit) : digits.Length > 0 && digits.All(char.IsAsciiDigit);
            Error(token, digitsOnly ? $"{token.Text} does not fit in 64 bits" : $"'{token.Text}' is not a number", expected + " (hex with 0x, decimal otherwise; '_' may group digits)");
            return false;
        }

        // ---- meaning -------------------------------------------------------------------------------------------------

        private bool Check(Draft draft)
        {
            int anything = draft.Objects.FindIndex(o => o.Object == null);
            if (anything >= 0 && draft.Objects.Count > 1)
            {
                Error(draft.Objects[anything].Token, $"`{PolicyNames.Anything}` together with other objects", $"`{PolicyNames.Anything}` alone, or a list of objects");
                return false;
            }
            // A register's bit or an MSR named beside the whole class is already covered.
            foreach (var (o, t) in draft.Objects)
            {
                if (o == null || o.Detail == 0) continue;
                var whole = draft.Objects.FirstOrDefault(x => x.Object != null && x.Object.Object == o.Object && x.Object.Detail == 0);
                if (whole.Object != null)
                {
                    Error(t, $"'{o.Name}' is already covered by '{whole.Object.Name}' in the same rule", $"either '{whole.Object.Name}' or the bits/MSRs it should be about");
                    return false;
                }
            }
            // An access that never happens to any named object: the rule could never match.
            if (draft.Accesses.Count > 0)
            {
                foreach (var (o, t) in draft.Objects)
                {
                    if (o == null) continue;
                    GuardAccess[]? possible = PolicyNames.PossibleAccesses(o.Object);
                    if (possible == null || draft.Accesses.Any(a => possible.Contains(a.Access))) continue;
                    string accesses = string.Join(", ", draft.Accesses.Select(a => PolicyNames.Name(a.Access)));
                    Error(t, $"'{o.Name}' is never touched by {accesses}: this rule could never match it",
                        $"an access that happens to '{o.Name}': " + string.Join(", ", possible.Select(PolicyNames.Name)) + ", or no access (any)");
                    return false;
                }
            }
            foreach (var (shape, t) in draft.None)
            {
                if (draft.All.Any(a => a.Shape == shape))
                {
                    Error(t, $"'{t.Text}' is both required (`when`) and excluded (`unless`): this rule could never match", "a shape in one of the two clauses");
                    return false;
                }
            }
            return true;
        }

        private void Emit(Draft draft, int offset, int length)
        {
            var rule = new GuardRule
            {
                Verdict = draft.Verdict,
                Lock = draft.Lock,
                RipFirst = draft.RipFirst,
                RipLast = draft.RipLast,
                Cr3 = draft.Cr3,
            };
            foreach (var (a, _) in draft.Accesses) rule.Accesses |= GuardRules.Bit(a);
            foreach (var (r, _) in draft.Regions) rule.Regions |= GuardRules.Bit(r);
            foreach (var (c, _) in draft.Cpls) rule.Cpls |= (byte)(1 << c);
            foreach (var (s, _) in draft.All) rule.ContentAll |= s;
            foreach (var (s, _) in draft.None) rule.ContentNone |= s;

            // One GuardRule for the plain classes, one per register whose bits are named, one per MSR; in the order first named.
            var groups = new List<(uint Objects, ulong Detail, GuardObject Register)>();
            foreach (var (o, _) in draft.Objects)
            {
                if (o == null) { groups.Add((0, 0, GuardObject.None)); continue; }
                int plain = groups.FindIndex(g => g.Detail == 0 && g.Register == GuardObject.None);
                if (o.Detail == 0)
                {
                    if (plain < 0) groups.Add((GuardRules.Bit(o.Object), 0, GuardObject.None));
                    else groups[plain] = (groups[plain].Objects | GuardRules.Bit(o.Object), 0, GuardObject.None);
                    continue;
                }
                int same = o.IsBits ? groups.FindIndex(g => g.Register == o.Object) : -1;
                if (same < 0) groups.Add((GuardRules.Bit(o.Object), o.Detail, o.Object));
                else groups[same] = (groups[same].Objects, groups[same].Detail | o.Detail, o.Object);
            }
            int before = _rules.Count;
            foreach (var (objects, detail, _) in groups)
            {
                if (_rules.Count >= GuardRuleSetHeader.MaxRules)
                {
                    if (!_tooMany)
                    {
                        Error(_line, _tokens[0].Column, _lineLength - _tokens[0].Column + 1,
                            $"this rule makes the policy longer than the hypervisor's {GuardRuleSetHeader.MaxRules} rules",
                            "fewer rules (a rule naming several registers' bits or several MSRs counts once per register or MSR)");
                        _tooMany = true;
                    }
                    return;
                }
                GuardRule r = rule;
                r.Objects = objects;
                r.Detail = detail;
                _rules.Add(r);
                _origins.Add(new RuleOrigin(_line, offset, length));
            }
            _sourceRules.Add((_line, before, _rules.Count - before));
        }

        // A rule every attempt of which an earlier rule already takes can never decide anything: say so (a warning).
        private void WarnShadowed()
        {
            foreach (var (line, first, count) in _sourceRules)
            {
                int? by = null;
                for (int i = first; i < first + count; i++)
                {
                    int shadow = -1;
                    for (int j = 0; j < first && shadow < 0; j++)
                    {
                        if (Covers(_rules[j], _rules[i])) shadow = j;
                    }
                    if (shadow < 0) { by = null; break; }
                    by = _origins[shadow].Line;
                }
                if (by is int earlier)
                {
                    string text = _lines[line - 1];
                    int column = text.Length - text.TrimStart().Length + 1;
                    _diagnostics.Add(new PolicyDiagnostic(PolicySeverity.Warning, line, column, text.Trim().Length,
                        $"this rule never decides anything: the rule on line {earlier} matches every attempt it does", "a rule before the broader one, or no rule",
                        Note: "rules are tried in order and the first match wins"));
                }
            }
        }

        /// <summary>True when every attempt <paramref name="b"/> matches is matched by <paramref name="a"/> (conservative).</summary>
        internal static bool Covers(in GuardRule a, in GuardRule b)
        {
            static bool Mask(uint wide, uint narrow) => wide == 0 || (narrow != 0 && (narrow & ~wide) == 0);
            if (!Mask(a.Objects, b.Objects) || !Mask(a.Accesses, b.Accesses) || !Mask(a.Regions, b.Regions) || !Mask(a.Cpls, b.Cpls)) return false;
            if (a.Lock != LockCondition.Any && a.Lock != b.Lock) return false;
            if ((a.ContentAll & ~b.ContentAll) != 0 || (a.ContentNone & ~b.ContentNone) != 0) return false;
            if ((a.RipFirst | a.RipLast) != 0 && ((b.RipFirst | b.RipLast) == 0 || b.RipFirst < a.RipFirst || b.RipLast > a.RipLast)) return false;
            if (a.Cr3 != 0 && a.Cr3 != b.Cr3) return false;
            if (a.Detail != 0)
            {
                if (b.Detail == 0 || a.Objects != b.Objects) return false;
                bool bits = a.Objects != GuardRules.Bit(GuardObject.SyscallMsr);
                if (bits ? (b.Detail & ~a.Detail) != 0 : a.Detail != b.Detail) return false;
            }
            return true;
        }
    }
}
