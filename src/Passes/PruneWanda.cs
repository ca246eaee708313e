using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Wanda (Sun et al. 2023): prune by |W_ij|·‖X_j‖₂, the weight's magnitude times the norm of its input channel over
/// the calibration activations, compared within each output row (unstructured, or N:M such as 2:4). A weight that
/// meets large activations is kept even when it is small. No retraining, no weight update.
/// <code>
/// before: %y = linear %x, %w        after: the same graph; the checkpoint's %w has the zeros
/// </code>
/// </summary>
public sealed class PruneWanda(QuantizationContext context, PruningSpec spec) : IPass
{
    public string Name => "prune-wanda";

    public string Description => "zero the lowest |w|·‖x‖₂ of each weight row (calibration activations)";

    public bool Run(Graph graph)
    {
        var stats = context.RequireStats(Name);
        return Pruning.PruneAll(graph, context, spec, (linear, w, n, k) =>
        {
            var norms = stats.For(QuantizedLinears.WeightName(linear), Name).Norms();
            var scores = new float[w.Length];
            for (int i = 0; i < w.Length; i++) scores[i] = (float)(MathF.Abs(w[i]) * norms[i % k]);
            return scores;
        });
    }
}
