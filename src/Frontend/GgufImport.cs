using ModelCompiler.Runtime.Gguf;

namespace ModelCompiler.Frontend;

/// <summary>
/// A llama.cpp .gguf file as a model: its llama.* metadata become the built-in llama template's hyperparameters
/// (<see cref="GgufLlama.Config"/>), --set on top. The weights are read by <see cref="Runtime.WeightStore"/>.
/// </summary>
public static class GgufImport
{
    public static LoadedModel Load(string path, IReadOnlyDictionary<string, string> sets)
    {
        System.Text.Json.Nodes.JsonObject config;
        using (var file = GgufFile.Open(path)) config = GgufLlama.Config(file);
        return ModelFrontend.Load(BuiltinArchFiles.Scheme + HuggingFaceImport.Templates[GgufLlama.Architecture], config, path, sets, BuiltinArchFiles.Instance);
    }
}
