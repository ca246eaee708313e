using System.Text;

namespace ModelCompiler.IR;

/// <summary>
/// The stable text form of a graph. Ids are renumbered densely in print order, attributes are sorted,
/// floats print in shortest round-trip form: the same graph always prints the same bytes.
/// <code>
/// %3 = rms_norm %2, %1 {eps=1E-05, offset=0.0} : f32[batch,seq,64]  // decoder_layer.0.h
/// </code>
/// </summary>
public static class Printer
{
    public sealed record Options(bool ShowNames = true, bool ShowLocations = false, bool ShowHyperparameters = true);

    public static string Print(Graph graph, Options? options = null)
    {
        options ??= new Options();
        var sb = new StringBuilder();
        var number = new Dictionary<Node, int>();
        for (int i = 0; i < graph.Nodes.Count; i++) number[graph.Nodes[i]] = i;
        string Ref(Node n) => number.TryGetValue(n, out var k) ? $"%{k}" : $"%?{n.Id}";

        sb.Append("graph ").Append(graph.Name).Append(" {\n");
        if (options.ShowHyperparameters)
            foreach (var (name, value) in graph.Hyperparameters)
                sb.Append("  hyper ").Append(name).Append(" = ").Append(Attrs.Format(value)).Append('\n');

        foreach (var n in graph.Nodes)
        {
            var line = new StringBuilder();
            line.Append("  ").Append(Ref(n)).Append(" = ").Append(n.Op.Mnemonic());
            if (n.Op is OpKind.Input or OpKind.Weight)
            {
                line.Append(' ').Append(Attrs.Quote(n.Attrs.Str("name")));
            }
            else if (n.Op == OpKind.Const)
            {
                line.Append(' ').Append(Attrs.FormatDouble(n.Attrs.Float("value")));
            }
            else
            {
                if (n.Inputs.Length > 0) line.Append(' ').Append(string.Join(", ", n.Inputs.Select(Ref)));
                if (n.Attrs.Count > 0) line.Append(' ').Append(n.Attrs);
            }
            line.Append(" : ").Append(n.Type);
            var comment = new List<string>();
            if (options.ShowNames && n.Name is not null && n.Op is not (OpKind.Input or OpKind.Weight)) comment.Add(n.Name);
            if (options.ShowLocations && n.Span is not null) comment.Add(n.Span.ToString());
            if (comment.Count > 0) line.Append("  // ").Append(string.Join(" @ ", comment));
            sb.Append(line).Append('\n');
        }
        foreach (var (name, value) in graph.Outputs)
            sb.Append("  output ").Append(Attrs.Quote(name)).Append(" = ").Append(Ref(value)).Append('\n');
        sb.Append("}\n");
        return sb.ToString();
    }
}
