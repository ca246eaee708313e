using System.Collections.Immutable;
using System.Globalization;
using ModelCompiler.IR;

namespace ModelCompiler.Frontend;

/// <summary>
/// What an expression evaluates to while a model is elaborated: numbers, strings and lists are
/// computed then and there (hyperparameter arithmetic, weight names); tensors are IR nodes.
/// </summary>
public abstract record Value
{
    public abstract string Kind { get; }
}

public sealed record IntValue(long V) : Value { public override string Kind => "int"; public override string ToString() => V.ToString(CultureInfo.InvariantCulture); }
public sealed record FloatValue(double V) : Value { public override string Kind => "float"; public override string ToString() => Attrs.FormatDouble(V); }
public sealed record BoolValue(bool V) : Value { public override string Kind => "bool"; public override string ToString() => V ? "true" : "false"; }
public sealed record StringValue(string V) : Value { public override string Kind => "string"; public override string ToString() => V; }
public sealed record DimValue(Dim V) : Value { public override string Kind => "dim"; public override string ToString() => V.ToString(); }
public sealed record TensorValue(Node Node) : Value { public override string Kind => "tensor"; public override string ToString() => Node.Type.ToString(); }
/// <summary>The value of an omitted optional argument.</summary>
public sealed record NoneValue : Value { public static readonly NoneValue Instance = new(); public override string Kind => "none"; }

public sealed record ListValue(ImmutableArray<Value> Items) : Value
{
    public override string Kind => "list";
    public override string ToString() => "[" + string.Join(", ", Items) + "]";
    public bool Equals(ListValue? other) => other is not null && Items.SequenceEqual(other.Items);
    public override int GetHashCode() => Items.Length;
}

public static class ValueTypes
{
    /// <summary>Type names usable in hyper declarations and block parameters.</summary>
    public static readonly IReadOnlySet<string> Names = new HashSet<string> { "int", "float", "bool", "string", "ints", "floats", "tensor", "list", "any" };

    /// <summary>Whether <paramref name="v"/> fits <paramref name="type"/>, converting int to float where a float is expected.</summary>
    public static bool TryConvert(Value v, string type, out Value converted)
    {
        converted = v;
        switch (type)
        {
            case "any": return true;
            case "int": return v is IntValue;
            case "float":
                if (v is IntValue i) { converted = new FloatValue(i.V); return true; }
                return v is FloatValue;
            case "bool": return v is BoolValue;
            case "string": return v is StringValue;
            case "tensor": return v is TensorValue;
            case "list": return v is ListValue;
            case "ints":
                if (v is IntValue single) { converted = new ListValue([single]); return true; }
                return v is ListValue l && l.Items.All(x => x is IntValue);
            case "floats":
                if (v is IntValue or FloatValue) { converted = new ListValue([new FloatValue(v is IntValue si ? si.V : ((FloatValue)v).V)]); return true; }
                if (v is ListValue fl && fl.Items.All(x => x is IntValue or FloatValue))
                {
                    converted = new ListValue(fl.Items.Select(x => x is IntValue iv ? new FloatValue(iv.V) : x).ToImmutableArray());
                    return true;
                }
                return false;
            default: return false;
        }
    }

    /// <summary>The plain value stored in a graph's hyperparameter table.</summary>
    /// <summary>"an int", "a float", "a list of ints": how messages name a type.</summary>
    public static string Describe(string type) => type switch
    {
        "ints" => "a list of ints",
        "floats" => "a list of floats",
        "int" or "any" => $"an {type}",
        _ => $"a {type}",
    };

    public static object ToObject(Value v) => v switch
    {
        IntValue i => i.V,
        FloatValue f => f.V,
        BoolValue b => b.V,
        StringValue s => s.V,
        ListValue l when l.Items.All(x => x is IntValue) => l.Items.Select(x => ((IntValue)x).V).ToArray(),
        ListValue l when l.Items.All(x => x is FloatValue) => l.Items.Select(x => ((FloatValue)x).V).ToArray(),
        ListValue l => l.ToString(),
        _ => v.ToString() ?? "",
    };
}
