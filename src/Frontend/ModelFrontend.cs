using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Frontend;

/// <summary>The frontend's failure: the rendered diagnostics (file:line:col, source line, caret).</summary>
public sealed class CompilationFailedException(DiagnosticBag diagnostics) : McException(diagnostics.Render())
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
    public static LoadedModel Load(string archPath, string? configPath, IReadOnlyDictionary<string, string> sets, IArchFiles? files = null)
    {
        var diagnostics = new DiagnosticBag();
        var source = ArchLoader.Load(archPath, diagnostics, files) ?? throw new CompilationFailedException(diagnostics);
        var config = configPath is null ? null : ReadConfig(configPath);
        var hypers = HyperBinding.Resolve(source, config, configPath, sets);
        var graph = Elaborator.Elaborate(source, hypers, diagnostics) ?? throw new CompilationFailedException(diagnostics);
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
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                   ?? throw new McException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new McException($"{path}:{(e.LineNumber ?? 0) + 1}:{(e.BytePositionInLine ?? 0) + 1}: malformed JSON: {e.Message.Split('\n')[0]}");
        }
    }
}
