using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Quantization;

/// <summary>
/// Runs a model over calibration windows and gathers, at the input of every linear the quantization passes may
/// rewrite, per-channel max |x|, mean |x| and Σx², and on request XᵀX over all rows (AWQ's output error). On the CPU
/// target the inputs of those linears become extra graph outputs (so the fusion passes keep them); on the
/// interpreter they are observed as they are computed.
/// </summary>
public static class Calibration
{
    /// <param name="graph">a freshly elaborated graph (the CPU path adds outputs to it)</param>
    /// <param name="weights">the checkpoint's float tensors by name</param>
    /// <param name="windows">token ids, one forward each (input_ids [1, length])</param>
    /// <param name="gram">also accumulate XᵀX of every observed input (AWQ)</param>
    public static CalibrationStats Collect(Graph graph, Func<string, float[]> weights, IReadOnlyList<long[]> windows,
        bool interpreter = false, bool gram = false, Action<int>? progress = null)
    {
        if (windows.Count == 0) throw new McException("calibration: no windows of tokens");
        var inputs = graph.Inputs.Select(i => i.Attrs.Str("name")).ToList();
        if (inputs is not ["input_ids"])
            throw new McException($"calibration runs models whose only input is input_ids; {graph.Name} takes {string.Join(", ", inputs)}");
        var linears = QuantizedLinears.Candidates(graph);
        var observed = linears.Select(l => l.Input(0)).Distinct().ToList();
        var statsOf = observed.ToDictionary(n => n, n => new ChannelStats((int)n.Type[-1].Size));
        var result = new CalibrationStats();
        foreach (var l in linears) result.ByWeight.TryAdd(QuantizedLinears.WeightName(l), statsOf[l.Input(0)]);

        void Observe(ChannelStats stats, float[] data)
        {
            int k = stats.Channels, rows = data.Length / k;
            for (int r = 0; r < rows; r++) stats.Add(data.AsSpan(r * k, k));
            if (gram) stats.AddGram(Gram(data, rows, k));
        }

        if (interpreter)
        {
            var run = new Interpreter(graph);
            var cache = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
            RefTensor Load(string name, TensorType type) =>
                cache.TryGetValue(name, out var t) ? t : cache[name] = RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), weights(name));
            for (int w = 0; w < windows.Count; w++)
            {
                var feeds = new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, windows[w].Length], windows[w]) };
                run.Run(feeds, Load, (node, value) =>
                {
                    if (statsOf.TryGetValue(node, out var s)) Observe(s, value.ToFloat32());
                });
                progress?.Invoke(w + 1);
            }
            return result;
        }

        var names = new Dictionary<string, ChannelStats>(StringComparer.Ordinal);
        for (int i = 0; i < observed.Count; i++)
        {
            graph.SetOutput($"calibration.{i}", observed[i]);
            names[$"calibration.{i}"] = statsOf[observed[i]];
        }
        new PassManager(CpuBackend.Pipeline).Run(graph);
        var model = CpuBackend.Instantiate(CpuBackend.Compile(graph));
        model.LoadWeights(weights);
        for (int w = 0; w < windows.Count; w++)
        {
            var outputs = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = ([1, windows[w].Length], windows[w]) });
            foreach (var (name, stats) in names) Observe(stats, outputs[name].Data);
            progress?.Invoke(w + 1);
        }
        return result;
    }

    /// <summary>XᵀX of x [rows, k] with the GEMM: Xᵀ packed as a weight [k, rows], so Y = Xᵀ·(Xᵀ)ᵀ.</summary>
    internal static float[] Gram(float[] x, int rows, int k)
    {
        var xt = new float[(long)k * rows];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < k; c++) xt[(long)c * rows + r] = x[(long)r * k + c];
        var g = new float[k * k];
        Runtime.Kernels.Gemm.Linear(xt, k, Runtime.Kernels.PackedWeight.Pack(xt, k, rows), g);
        return g;
    }

    /// <summary>
    /// Calibration tokens from a file: a .safetensors holding one integer tensor of ids, or text encoded with the model's
    /// tokenizer (documents separated by "\n&lt;|endoftext|&gt;\n" are encoded alone, each followed by the end-of-text id,
    /// as the perplexity protocol does). Every id must be inside the model's vocabulary.
    /// </summary>
    public static List<long> ReadTokens(string path, Func<Runtime.Tokenizers.ITokenizer>? tokenizer, long vocabSize)
    {
        if (!File.Exists(path)) throw new McException($"--calibration {path}: no such file");
        List<long> ids;
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            using var file = SafetensorsFile.Open(path);
            var integer = file.Tensors.Where(t => t.DType.IsInteger()).ToList();
            if (integer.Count != 1)
                throw new McException($"--calibration {path}: expected exactly one integer tensor of token ids, found {integer.Count}");
            ids = file.ReadInt64(integer[0].Name).ToList();
        }
        else
        {
            var t = tokenizer?.Invoke() ?? throw new McException($"--calibration {path}: text needs the model's tokenizer (tokenizer.json next to the weights)");
            string text = File.ReadAllText(path);
            // The perplexity protocol (EvalCorpus): documents split on EOS lines, each encoded alone and followed by EOS.
            int? eos = t.SpecialIds.Eos ?? (t.SpecialTokens.TryGetValue("<|endoftext|>", out var e) ? e : null);
            var eosToken = eos is { } id ? t.IdToToken(id) : null;
            ids = (eosToken is null ? t.Encode(text, addSpecialTokens: false).ToList() : Runtime.Generation.EvalCorpus.Encode(t, text, eos!.Value, eosToken))
                .Select(i => (long)i).ToList();
        }
        for (int i = 0; i < ids.Count; i++)
            if (ids[i] < 0 || ids[i] >= vocabSize)
                throw new McException($"--calibration {path}: token id {ids[i]} at position {i} is outside the model's vocabulary of {vocabSize} (a file for another model?)");
        if (ids.Count < 2) throw new McException($"--calibration {path}: fewer than 2 tokens");
        return ids;
    }

    /// <summary>The inputs of the first <paramref name="count"/> perplexity windows of <paramref name="length"/> tokens (<c>mc perplexity --skip-windows count</c> scores the rest).</summary>
    public static List<long[]> Windows(IReadOnlyList<long> ids, int count, int length)
    {
        var asInts = ids.Select(i => (int)i).ToList();
        var windows = Runtime.Generation.EvalCorpus.Windows(asInts, length).Take(count).Select(w => Runtime.Generation.EvalCorpus.Input(asInts, w)).ToList();
        if (windows.Count == 0) throw new McException($"calibration: {ids.Count} tokens make no full window of {length} (+1 target)");
        return windows;
    }
}
