using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends;

/// <summary>
/// Binds a graph's weight declarations to checkpoint tensors, checking everything before any
/// computation: every name present, every shape as declared, every dtype convertible.
/// </summary>
public static class WeightBinding
{
    /// <summary>Checks all weights of <paramref name="graph"/> against <paramref name="store"/>; throws a one-line McException at the first problem.</summary>
    public static void Validate(Graph graph, WeightStore store)
    {
        var missing = graph.Weights.Select(w => w.Attrs.Str("name")).Where(n => !store.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new McException($"{store.Path}: no tensor '{missing[0]}'{(missing.Count > 1 ? $" (and {missing.Count - 1} more missing)" : "")}, which {Where(graph.Weights.First(w => w.Attrs.Str("name") == missing[0]))} needs");
        foreach (var w in graph.Weights)
        {
            var name = w.Attrs.Str("name");
            var info = store.Get(name);
            var declared = w.Type.Shape.Select(d => d.Size).ToArray();
            if (!info.Shape.SequenceEqual(declared))
                throw new McException($"{store.FileOf(name)}: tensor '{name}' has shape [{string.Join(",", info.Shape)}] but {Where(w)} declares {w.Type}");
            if (w.Type.DType.IsFloat() != info.DType.IsFloat())
                throw new McException($"{store.FileOf(name)}: tensor '{name}' is {info.DType} but {Where(w)} declares {w.Type}");
        }
    }

    /// <summary>A loader for the interpreter: reads (and converts to double) each weight once.</summary>
    public static Func<string, TensorType, RefTensor> Loader(WeightStore store) => (name, type) =>
    {
        var info = store.Get(name);
        return info.DType.IsFloat()
            ? RefTensor.FromFloats(info.Shape, store.ReadFloat64(name), type.DType)
            : RefTensor.FromInts(info.Shape, store.ReadInt64(name), type.DType);
    };

    private static string Where(Node n) => n.Span is null ? "the model" : $"the declaration at {n.Span}";
}
