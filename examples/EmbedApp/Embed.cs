using System.Reflection;
using System.Text.Json;
using ModelCompiler.Runtime;

/// <summary>What an app does with a compiled model: load the assembly, load the weights, run one forward, read the logits.</summary>
public static class Embed
{
    /// <summary>
    /// The model class in an assembly written by <c>mc compile</c>, named by the manifest beside it (<c>"type"</c> in
    /// &lt;Model&gt;.manifest.json). Loaded at run time: the assembly is compiled against the running runtime's
    /// implementation assemblies, so a compile-time reference from an app would not resolve <c>System.Object</c>.
    /// </summary>
    public static ICompiledModel Load(string dll)
    {
        var manifest = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(dll))!, Path.GetFileNameWithoutExtension(dll) + ".manifest.json");
        using var json = JsonDocument.Parse(File.ReadAllText(manifest));
        var type = json.RootElement.GetProperty("type").GetString() ?? throw new McException($"{manifest}: no \"type\"");
        return Assembly.LoadFrom(Path.GetFullPath(dll)).CreateInstance(type) as ICompiledModel
            ?? throw new McException($"{dll}: no ICompiledModel class {type}");
    }

    /// <summary>The last position's logits and their argmax for the token ids <paramref name="ids"/> (batch 1).</summary>
    public static (float[] Logits, int ArgMax) Run(ICompiledModel model, string weights, long[] ids)
    {
        using var store = WeightStore.Open(weights);
        model.LoadWeights(store);
        var output = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = ([1, ids.Length], ids) })["logits"];
        int vocab = (int)output.Shape[^1];
        var last = output.Data.AsSpan(output.Data.Length - vocab, vocab).ToArray();
        int argmax = 0;
        for (int i = 1; i < vocab; i++) if (last[i] > last[argmax]) argmax = i;
        return (last, argmax);
    }
}
