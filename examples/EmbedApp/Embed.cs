using ModelCompiler.Runtime;

/// <summary>What an app does with a compiled model: load the weights, run one forward, read the logits.</summary>
public static class Embed
{
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
