using System.Reflection;

namespace ModelCompiler.Frontend;

/// <summary>Where .arch files (and their imports) are read from: the disk, or the library built into mc.</summary>
public interface IArchFiles
{
    bool Exists(string path);
    string Read(string path);
    /// <summary>The path of <paramref name="relative"/> as seen from the file <paramref name="from"/>.</summary>
    string Resolve(string from, string relative);
}

public sealed class DiskArchFiles : IArchFiles
{
    public static readonly DiskArchFiles Instance = new();
    public bool Exists(string path) => File.Exists(path);
    public string Read(string path) => File.ReadAllText(path);
    public string Resolve(string from, string relative) => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(from))!, relative));
}

/// <summary>
/// The model templates and standard blocks of <c>examples/</c>, embedded in this assembly so that
/// <c>mc eval &lt;hf-folder&gt;</c> and <c>mc import-hf</c> work wherever mc is installed. Paths look
/// like <c>builtin:/llama.arch</c>, <c>builtin:/std/transformer.arch</c>.
/// </summary>
public sealed class BuiltinArchFiles : IArchFiles
{
    public const string Scheme = "builtin:/";
    public static readonly BuiltinArchFiles Instance = new();

    private readonly Dictionary<string, string> _files;

    private BuiltinArchFiles()
    {
        var assembly = typeof(BuiltinArchFiles).Assembly;
        _files = assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("arch/", StringComparison.Ordinal))
            .ToDictionary(n => Scheme + n["arch/".Length..].Replace('\\', '/'), n => ReadResource(assembly, n), StringComparer.Ordinal);
    }

    public IEnumerable<string> Paths => _files.Keys.Order(StringComparer.Ordinal);

    public bool Exists(string path) => _files.ContainsKey(path);

    public string Read(string path) => _files.TryGetValue(path, out var text) ? text : throw new FileNotFoundException(path);

    public string Resolve(string from, string relative)
    {
        var dir = from[..(from.LastIndexOf('/') + 1)];
        var parts = new List<string>();
        foreach (var part in (dir[Scheme.Length..] + relative).Split('/'))
        {
            if (part == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); }
            else if (part is not ("." or "")) parts.Add(part);
        }
        return Scheme + string.Join("/", parts);
    }

    private static string ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
