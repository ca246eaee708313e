using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Frontend;

/// <summary>
/// The frontend's failure: the rendered diagnostics (file:line:col, source line, caret), after a first line naming
/// the file that caused it when that is not the .arch file (a config.json whose values the model rejects).
/// </summary>
public sealed class CompilationFailedException(DiagnosticBag diagnostics, string? cause = null)
    : McException(cause is null ? diagnostics.Render() : cause + "\n" + diagnostics.Render())
{
    public DiagnosticBag Diagnostics { get; } = diagnostics;
}

/// <summary>A model elaborated to IR with the hyperparameters it was given.</summary>
public sealed record LoadedModel(ModelSource Source, IReadOnlyDictionary<string, Value> Hyperparameters, Graph Graph);

/// <summary>The frontend in one call: parse and check the .arch file, bind hyperparameters, elaborate to IR.</summary>
public static class ModelFrontend
{
    /// <param name="archPath">the .arch file</param>
    /// <param name="configPath">a Hugging Face config.json supplying hyperparameters, or null</param>
    /// <param name="sets">--set overrides, by hyperparameter name</param>
    public static LoadedModel Load(string archPath, string? configPath, IReadOnlyDictionary<string, string> sets, IArchFiles? files = null) =>
        Load(archPath, configPath is null ? null : ReadConfig(configPath), configPath, sets, files);

    /// <summary>As above with the config already parsed (a GGUF file's metadata); <paramref name="configPath"/> names it in errors.</summary>
    public static LoadedModel Load(string archPath, JsonObject? config, string? configPath, IReadOnlyDictionary<string, string> sets, IArchFiles? files = null)
    {
        var diagnostics = new DiagnosticBag();
        var source = ArchLoader.Load(archPath, diagnostics, files) ?? throw new CompilationFailedException(diagnostics);
        var hypers = HyperBinding.Resolve(source, config, configPath, sets);
        var graph = Elaborator.Elaborate(source, hypers, diagnostics) ?? throw new CompilationFailedException(diagnostics,
            configPath is null ? null : $"{configPath}: {source.RootPath} rejects the hyperparameters this config gives it:");
        return new LoadedModel(source, hypers, graph);
    }

    /// <summary>A config.json as a JSON object; malformed JSON is a one-line error naming the file and position.</summary>
    public static JsonObject ReadConfig(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new McException($"{path}: cannot read: {e.Message}");
        }
        try
        {
            // Lone-surrogate escapes first: System.Text.Json throws InvalidOperationException on them wherever they
            // are touched, the duplicate-key check below included.
            JsonStrings.RequireDecodable(System.Text.Encoding.UTF8.GetBytes(text), path, maxDepth: 64);
            // A key given twice is ambiguous (and JsonObject would throw on first access): reject it while parsing.
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 64, AllowDuplicateProperties = false }) as JsonObject
                   ?? throw new McException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new McException($"{path}:{(e.LineNumber ?? 0) + 1}:{(e.BytePositionInLine ?? 0) + 1}: malformed JSON: {Runtime.UserText.Detail(e.Message)}");
        }
    }
}
