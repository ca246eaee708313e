using ModelCompiler.IR;

namespace ModelCompiler.Frontend;

/// <summary>
/// A model's declarations after parsing its file and everything it imports: the unit the checker and
/// the elaborator work on.
/// </summary>
public sealed class ModelSource
{
    public required string RootPath { get; init; }
    public required IReadOnlyList<ArchFile> Files { get; init; }
    public string? ModelName { get; init; }
    public SourceSpan? ModelSpan { get; init; }
    public required IReadOnlyList<HyperDecl> Hypers { get; init; }
    public required IReadOnlyList<InputDecl> Inputs { get; init; }
    public required IReadOnlyDictionary<string, BlockDecl> Blocks { get; init; }
    public ForwardDecl? Forward { get; init; }
    public required IReadOnlySet<string> IgnoredConfigKeys { get; init; }

    /// <summary>Names of hypers, inputs and blocks whose declarations failed to parse (already reported).</summary>
    public IReadOnlySet<string> BrokenNames { get; init; } = new HashSet<string>();

    /// <summary>Whether a 'forward' declaration was present but failed to parse.</summary>
    public bool ForwardBroken { get; init; }
}

/// <summary>Parses an .arch file and its imports, and checks that the declarations fit together.</summary>
public static class ArchLoader
{
    /// <summary>Loads <paramref name="path"/>; returns null when there were errors (they are in <paramref name="diagnostics"/>).</summary>
    public static ModelSource? Load(string path, DiagnosticBag diagnostics, IArchFiles? archFiles = null)
    {
        var fs = archFiles ?? DiskArchFiles.Instance;
        var files = new List<ArchFile>();
        var visiting = new Stack<string>();
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        string full = fs is DiskArchFiles ? Path.GetFullPath(path) : path;
        if (!fs.Exists(full))
            throw new Runtime.McException($"{path}: no such file");
        LoadFile(fs, full, DisplayPath(path), null, files, visiting, loaded, diagnostics);
        var source = Assemble(DisplayPath(path), files, diagnostics);
        if (source is not null) StaticChecker.Check(source, diagnostics);
        return diagnostics.HasErrors ? null : source;
    }

    /// <summary>Parses source text that has no imports (tests, snippets).</summary>
    public static ModelSource? LoadText(string displayPath, string text, DiagnosticBag diagnostics)
    {
        diagnostics.AddSource(displayPath, text);
        var file = new Grammar(displayPath).ParseFile(text, diagnostics);
        foreach (var import in file.Decls.OfType<ImportDecl>())
            diagnostics.Error(Codes.ImportFailed, import.Span, "imports are not available when parsing text");
        var source = Assemble(displayPath, [file], diagnostics);
        if (source is not null) StaticChecker.Check(source, diagnostics);
        return diagnostics.HasErrors ? null : source;
    }

    private static string DisplayPath(string path) => path.Replace('\\', '/');

    private static void LoadFile(IArchFiles fs, string fullPath, string display, SourceSpan? importedAt, List<ArchFile> files,
        Stack<string> visiting, HashSet<string> loaded, DiagnosticBag diagnostics)
    {
        if (visiting.Contains(fullPath))
        {
            diagnostics.Error(Codes.ImportFailed, importedAt!, $"import cycle: {string.Join(" -> ", visiting.Reverse().Select(Path.GetFileName))} -> {Path.GetFileName(fullPath)}");
            return;
        }
        if (!loaded.Add(fullPath)) return;
        string text;
        try { text = fs.Read(fullPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (importedAt is null) throw new Runtime.McException($"{display}: cannot read: {e.Message}");
            diagnostics.Error(Codes.ImportFailed, importedAt, $"cannot read imported file '{display}': {e.Message}");
            return;
        }
        diagnostics.AddSource(display, text);
        var file = new Grammar(display).ParseFile(text, diagnostics);
        visiting.Push(fullPath);
        foreach (var import in file.Decls.OfType<ImportDecl>())
        {
            if (import.Path.Length == 0)
            {
                diagnostics.Error(Codes.ImportFailed, import.Span, "an import path is a plain string (no interpolation)");
                continue;
            }
            if (import.Path.IndexOfAny(Path.GetInvalidPathChars()) >= 0 || import.Path.Any(char.IsControl))
            {
                diagnostics.Error(Codes.ImportFailed, import.Span, $"import path {Runtime.UserText.Quote(import.Path)} holds a character no file name may contain");
                continue;
            }
            string target, targetDisplay;
            try
            {
                target = fs.Resolve(fullPath, import.Path);
                targetDisplay = fs is DiskArchFiles ? DisplayPath(Path.Combine(Path.GetDirectoryName(display) ?? "", import.Path)) : target;
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                diagnostics.Error(Codes.ImportFailed, import.Span, $"import path {Runtime.UserText.Quote(import.Path)} is not a valid path: {Runtime.UserText.Detail(e.Message)}");
                continue;
            }
            if (!fs.Exists(target))
            {
                diagnostics.Error(Codes.ImportFailed, import.Span, $"imported file '{import.Path}' not found (looked in {Path.GetDirectoryName(fullPath)})");
                continue;
            }
            LoadFile(fs, target, targetDisplay, import.Span, files, visiting, loaded, diagnostics);
        }
        visiting.Pop();
        files.Add(file);
    }

    private static ModelSource? Assemble(string root, List<ArchFile> files, DiagnosticBag diagnostics)
    {
        var blocks = new Dictionary<string, BlockDecl>(StringComparer.Ordinal);
        var hypers = new List<HyperDecl>();
        var inputs = new List<InputDecl>();
        var ignored = new HashSet<string>(StringComparer.Ordinal);
        ForwardDecl? forward = null;
        ModelDecl? model = null;
        var broken = new HashSet<string>(StringComparer.Ordinal);
        bool forwardBroken = false;
        var names = new Dictionary<string, SourceSpan>(StringComparer.Ordinal);

        void Claim(string name, SourceSpan span, string what)
        {
            if (names.TryGetValue(name, out var previous))
                diagnostics.Error(Codes.Duplicate, span, $"{what} '{name}' is already declared at {previous}");
            else names[name] = span;
        }

        foreach (var file in files)
        {
            bool isRoot = file.Path == root;
            foreach (var decl in file.Decls)
            {
                if (!isRoot && decl is ModelDecl or HyperDecl or InputDecl or ForwardDecl)
                {
                    diagnostics.Error(Codes.MissingDeclaration, decl.Span, "an imported file may only declare blocks, imports and ignore lists");
                    continue;
                }
                switch (decl)
                {
                    case BlockDecl b: Claim(b.Name, b.Span, "block"); blocks.TryAdd(b.Name, b); break;
                    case HyperDecl h: Claim(h.Name, h.Span, "hyperparameter"); hypers.Add(h); break;
                    case InputDecl i: Claim(i.Name, i.Span, "input"); inputs.Add(i); break;
                    case IgnoreDecl ig: ignored.UnionWith(ig.Keys); break;
                    case BrokenDecl x:
                        if (x.Keyword == "forward") forwardBroken = true;
                        else if (x.Name is not null && x.Keyword is "hyper" or "input" or "block") broken.Add(x.Name);
                        break;
                    case ForwardDecl f:
                        if (forward is not null) diagnostics.Error(Codes.Duplicate, f.Span, $"a second forward (the first is at {forward.Span})");
                        else forward = f;
                        break;
                    case ModelDecl m:
                        if (model is not null) diagnostics.Error(Codes.Duplicate, m.Span, $"a second model name (the first is at {model.Span})");
                        else model = m;
                        break;
                }
            }
        }
        return new ModelSource
        {
            RootPath = root,
            Files = files,
            ModelName = model?.Name,
            ModelSpan = model?.Span,
            Hypers = hypers,
            Inputs = inputs,
            Blocks = blocks,
            Forward = forward,
            IgnoredConfigKeys = ignored,
            BrokenNames = broken,
            ForwardBroken = forwardBroken,
        };
    }
}
