using System.Text;

namespace ModelCompiler.IR;

/// <summary>
/// The IR as a Graphviz DOT graph: one box per op (mnemonic, result type, stable name), weights and
/// inputs as ellipses, outputs as double octagons. (QuikGraph's Graphviz package is not on the package
/// feed this project builds from; DOT is a few lines.)
/// </summary>
public static class DotExporter
{
    public static string ToDot(Graph graph)
    {
        var sb = new StringBuilder();
        sb.Append("digraph ").Append(Quote(graph.Name)).Append(" {\n");
        sb.Append("  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
        var index = graph.Nodes.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i);
        foreach (var n in graph.Nodes)
        {
            string label, shape;
            switch (n.Op)
            {
                case OpKind.Input:
                    label = $"input {n.Attrs.Str("name")}\n{n.Type}";
                    shape = "ellipse, style=filled, fillcolor=\"#dbeafe\"";
                    break;
                case OpKind.Weight:
                    label = $"{n.Attrs.Str("name")}\n{n.Type}";
                    shape = "ellipse, style=filled, fillcolor=\"#f3f4f6\"";
                    break;
                case OpKind.Const:
                    label = Attrs.FormatDouble(n.Attrs.Float("value"));
                    shape = "plaintext";
                    break;
                default:
                    label = $"{n.Op.Mnemonic()}{(n.Name is null ? "" : "  " + n.Name)}\n{n.Type}";
                    shape = "box, style=rounded";
                    break;
            }
            sb.Append($"  n{index[n]} [label={Quote(label)}, shape={shape}];\n");
        }
        foreach (var n in graph.Nodes)
            foreach (var input in n.Inputs.Distinct())
                sb.Append($"  n{index[input]} -> n{index[n]};\n");
        int o = 0;
        foreach (var (name, value) in graph.Outputs)
        {
            sb.Append($"  out{o} [label={Quote(name)}, shape=doubleoctagon];\n  n{index[value]} -> out{o};\n");
            o++;
        }
        return sb.Append("}\n").ToString();
    }

    /// <summary>A DOT double-quoted string: backslashes and quotes escaped, newlines as \n.</summary>
    public static string Quote(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\r", "").Replace("\n", "\\n") + "\"";
}
