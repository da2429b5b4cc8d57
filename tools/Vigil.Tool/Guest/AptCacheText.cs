using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;

namespace Vigil.Tool.Guest;

/// <summary>One relation line of <c>apt-cache depends</c>.</summary>
/// <param name="Kind">Depends, PreDepends, Recommends, Conflicts, ...</param>
/// <param name="Package">The package named (for a virtual package, without the angle brackets).</param>
/// <param name="IsVirtual">apt printed it as &lt;name&gt;: no package has that name, others provide it.</param>
/// <param name="IsAlternative">apt printed '|': this relation or the next one satisfies the dependency.</param>
internal sealed record AptRelation(string Kind, string Package, bool IsVirtual, bool IsAlternative);

/// <summary>
/// Parses the text apt-cache prints. Kept apart from running apt so the parsing can be tested on
/// captured output.
/// </summary>
internal static partial class AptCacheText
{
    // "  Depends: name", " |Depends: name", "  Depends: <virtual>"; the providers of a virtual package
    // follow on lines indented by four spaces, which are not relations of the package itself.
    [GeneratedRegex(@"^ (?<alt>[ |])(?<kind>[A-Za-z-]+): (?<name><[^>]+>|\S+)\s*$")]
    private static partial Regex RelationLine();

    // "name (= 1.2-3)" inside a Depends field of apt-cache show.
    [GeneratedRegex(@"^\s*(?<name>[a-z0-9][a-z0-9+.-]*)(:[a-z0-9-]+)?\s*\(\s*=\s*(?<version>[^)\s]+)\s*\)\s*$")]
    private static partial Regex ExactRelation();

    /// <summary>The relations of <paramref name="package"/> in the output of <c>apt-cache depends PACKAGE...</c>.</summary>
    public static IReadOnlyList<AptRelation> ParseDepends(string text, string package)
    {
        var relations = new List<AptRelation>();
        bool inPackage = false;
        foreach (string rawLine in text.Split('\n'))
        {
            string line = rawLine.TrimEnd('\r');
            if (line.Length == 0) continue;
            if (!line.StartsWith(' '))
            {
                // A package header line; apt-cache depends prints one per package asked about.
                inPackage = line.Trim() == package;
                continue;
            }
            if (!inPackage) continue;
            Match match = RelationLine().Match(line);
            if (!match.Success) continue;   // a provider of the virtual package above
            string name = match.Groups["name"].Value;
            bool isVirtual = name.StartsWith('<');
            relations.Add(new AptRelation(match.Groups["kind"].Value, isVirtual ? name[1..^1] : name, isVirtual, match.Groups["alt"].Value == "|"));
        }
        return relations;
    }

    /// <summary>The one package named in a Depends relation of <paramref name="relations"/> that matches
    /// <paramref name="pattern"/> (whole name); an error when there is none or more than one.</summary>
    public static string SingleDependency(IReadOnlyList<AptRelation> relations, Regex pattern, string what)
    {
        var found = new List<string>();
        foreach (AptRelation relation in relations)
        {
            if (relation.Kind is "Depends" or "PreDepends" && !relation.IsVirtual && pattern.IsMatch(relation.Package) && !found.Contains(relation.Package))
            {
                found.Add(relation.Package);
            }
        }
        return found.Count switch
        {
            1 => found[0],
            0 => throw new ToolException($"apt-cache lists no {what} among the dependencies"),
            _ => throw new ToolException($"apt-cache lists several {what}: {string.Join(", ", found)}"),
        };
    }

    /// <summary>The stanzas (paragraphs) of <c>apt-cache show</c>: field name → value, continuation lines
    /// joined with newlines.</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, string>> ParseStanzas(string text)
    {
        var stanzas = new List<IReadOnlyDictionary<string, string>>();
        Dictionary<string, string>? current = null;
        string? lastField = null;
        foreach (string rawLine in text.Split('\n'))
        {
            string line = rawLine.TrimEnd('\r');
            if (line.Trim().Length == 0)
            {
                current = null;
                lastField = null;
                continue;
            }
            if (current == null)
            {
                current = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                stanzas.Add(current);
            }
            if (line[0] is ' ' or '\t')
            {
                if (lastField != null) current[lastField] += "\n" + line.Trim();
                continue;
            }
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) continue;
            lastField = line[..colon];
            current[lastField] = line[(colon + 1)..].Trim();
        }
        return stanzas;
    }

    /// <summary>The packages a Depends field pins to one version with "(= version)". Alternatives
    /// ("a | b") and other operators pin nothing.</summary>
    public static IReadOnlyDictionary<string, string> ExactVersions(string dependsField)
    {
        var pinned = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string relation in dependsField.Split(','))
        {
            if (relation.Contains('|', StringComparison.Ordinal)) continue;
            Match match = ExactRelation().Match(relation);
            if (match.Success) pinned[match.Groups["name"].Value] = match.Groups["version"].Value;
        }
        return pinned;
    }
}
